"""What every josh_jax CLI shares at its edges: one-line argument errors, strict booleans, and one
place that turns an expected failure into ``error: ...`` and exit code 2 (see docs/reliability.md).
"""

from __future__ import annotations

import argparse
import math
import sys

from josh_jax._cli.atomic import OutputError, check_output, describe_os_error  # noqa: F401  (re-exported for the CLIs)

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``error: ...; see --help``), exit code 2."""

    def error(self, message: str):
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); anything else is an argument error."""
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
    return v


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


def error_line(exc: BaseException, where=None) -> str:
    """The one line printed for an expected failure; ``where``: the output, named when an OSError
    names no file."""
    if isinstance(exc, OSError) and exc.errno is not None:
        text = describe_os_error(exc, where)
    else:
        text = str(exc) or type(exc).__name__
    return "error: " + " ".join(text.split())
