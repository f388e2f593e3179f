"""Reading the project's small JSON files (``bundle.json``, ``summary.json``, a work folder's
``fingerprint.json``, ``--config`` files) checked before use.

:func:`read_json` reads at most ``max_bytes`` (the size is taken from the file system before reading),
requires UTF-8, refuses ``NaN`` / ``Infinity`` (not JSON) and nesting deeper than :data:`MAX_DEPTH`,
and checks the top level's type. Every failure is one :class:`JsonFileError` line naming the file
and what to do; :func:`positive_number` checks one numeric field the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from josh_jax.errors import JoshError

#: the largest JSON file read (a long video's bundle.json is a few kB)
MAX_BYTES = 16 * 2**20
#: the deepest nesting of objects and lists read (the project's files nest three levels)
MAX_DEPTH = 64


class JsonFileError(JoshError, ValueError):
    """A JSON file cannot be used; one line naming the file, the field and what to do."""


def _constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _depth(value, limit: int) -> int:
    """Nesting depth of ``value`` (iterative, stops past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def read_json(path: str | Path, what: str, fix: str, max_bytes: int = MAX_BYTES, top: type = dict):
    """The parsed JSON file ``path``, whose top level must be a ``top``.

    ``what`` names the file's role ("bundle.json"), ``fix`` says what to do when it cannot be used
    ("write the bundle again"). Raises :class:`JsonFileError` (FileNotFoundError when it is missing)."""
    path = Path(path)
    if path.is_dir():
        raise JsonFileError(f"{path} is a folder, not a {what}; {fix}")
    size = path.stat().st_size  # FileNotFoundError for a missing file
    if size > max_bytes:
        raise JsonFileError(
            f"{path} is {size / 2**20:.1f} MiB, too large for a {what} (at most {max_bytes / 2**20:.0f} MiB); {fix}"
        )
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_constant)
    except UnicodeDecodeError:
        raise JsonFileError(f"{path} is not UTF-8 text, so it is not a {what}; {fix}") from None
    except RecursionError:
        raise JsonFileError(f"{path} is nested too deeply for a {what}; {fix}") from None
    except ValueError as exc:  # JSONDecodeError, NaN / Infinity
        raise JsonFileError(f"{path} is not a valid {what} ({str(exc)[:120]}); {fix}") from None
    except OSError as exc:
        raise JsonFileError(f"{path} cannot be read ({exc.strerror or exc}); {fix}") from None
    if len(raw) > max_bytes:
        raise JsonFileError(f"{path} grew past {max_bytes / 2**20:.0f} MiB while being read; {fix}")
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise JsonFileError(f"{path} is nested more than {MAX_DEPTH} levels deep, not a {what}; {fix}")
    if not isinstance(data, top):
        want = {dict: "an object", list: "a list"}.get(top, top.__name__)
        raise JsonFileError(f"{path}: the top level of a {what} must be {want}, got a {type(data).__name__}; {fix}")
    return data


def positive_number(value, field: str, source: str, high: float = math.inf, fix: str = "") -> float:
    """``value`` as a float in (0, high]: a JSON number (not a bool, list or string), finite.
    Raises :class:`JsonFileError` naming ``source`` and ``field``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value <= high:
        limit = "" if math.isinf(high) else f" and at most {high:g}"
        raise JsonFileError(
            f"{source}: {field} must be a number above 0{limit}, got {json.dumps(value)[:60]}"
            + (f"; {fix}" if fix else "")
        )
    return float(value)
