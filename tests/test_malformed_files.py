"""Malformed files, generated: every reader of an on-disk format, through the CLI that reads it.

Property-style and deterministic (seeded): from one valid file of each format, cases are made by
truncating at random offsets, flipping bytes, declaring oversized shapes, writing NaN / inf, wrong
dtypes, missing or zero-sized fields, deep nesting, non-UTF-8 text and files too large to be what
they claim. For each case the CLI is called in this process (as ``python -m`` calls its ``main``),
and the test asserts: exit code 2, exactly one line on stderr, no traceback, nothing written beside
the inputs, and at most :data:`MEMORY_BOUND` bytes allocated on the way (``tracemalloc`` sees
Python's and numpy's allocations). Library readers without a CLI of their own (a dataset pickle, a
resumed work folder) are held to the same line: one error of the project's base class, or the
damaged file recomputed. ``docs/reliability.md`` lists the families with the messages.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

#: the most bytes one malformed case may allocate (the valid files are ~1 MB)
MEMORY_BOUND = 64 * 2**20
SEED = 2026


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A valid results.npz + summary.json folder and a valid bundle, written once."""
    import josh_jax.body as jb
    from josh_jax.bundle import save
    from josh_jax.results import Results
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    d = tmp_path_factory.mktemp("valid")
    w, gt = make_world(jb.load("open"), 0, SynthConfig(num_keyframes=6))
    (d / "out").mkdir()
    Results.from_dict(gt).save(d / "out" / "results.npz")
    (d / "out" / "summary.json").write_text(json.dumps({"fps": 30.0, "video": "none.mp4"}))
    save(d / "bundle", [w], {"body_model": "open"})
    return d


def _listing(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")}


def _one_clean_line(main, argv: list, folder: Path, capsys) -> str:
    """Run ``main(argv)``; assert exit 2, one line on stderr, no traceback, ``folder`` unchanged and
    allocations under the bound; returns the line."""
    before = _listing(folder)
    capsys.readouterr()
    tracemalloc.start()
    try:
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own errors exit
            rc = exc.code
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc == 2, (rc, err[-600:])
    assert len(lines) == 1 and "Traceback" not in err, err[-600:]
    assert _listing(folder) == before, "the case wrote or changed a file"
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB allocated"
    return lines[0]


# ------------------------------------------------------------------ the malformed files


def _truncations(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    return [data[: rng.randrange(0, len(data))] for _ in range(n)]


def _flips(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    """``n`` copies of the .npz ``data`` with 1-4 bytes changed inside one member's stored bytes (its
    .npy header or its array): the zip's CRC no longer matches, so every copy is corrupt."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        spans = []
        for info in zf.infolist():
            name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len  # the local header's own lengths
            spans.append((start, start + info.compress_size))
    out = []
    for _ in range(n):
        b = bytearray(data)
        lo, hi = spans[rng.randrange(len(spans))]
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(lo, min(hi, lo + 160))  # mostly the .npy header, sometimes the array
            b[i] = (b[i] + rng.randint(1, 255)) % 256
        out.append(bytes(b))
    return out


def _with_header(arrays: dict, name: str, shape: tuple) -> bytes:
    """An .npz whose member ``name`` declares ``shape`` but holds the original few bytes."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in arrays.items():
            a = np.asarray(v)
            member = io.BytesIO()
            np.lib.format.write_array(member, a, allow_pickle=False)
            raw = member.getvalue()
            if k == name:
                hdr = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False, "shape": shape}
                h = io.BytesIO()
                np.lib.format.write_array_header_1_0(h, hdr)
                raw = h.getvalue() + raw[len(raw) - a.nbytes :]
            zf.writestr(k + ".npy", raw)
    return buf.getvalue()


def _npz_bytes(arrays: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


PER_PERSON_FRAME = ("visible", "global_orient", "body_pose", "transl", "joints_world", "foot_vertices_world")


def results_cases(valid: Path) -> list[tuple[str, bytes]]:
    """(family, bytes) of malformed results.npz files (every one must be refused)."""
    rng = random.Random(SEED)
    data = valid.read_bytes()
    with np.load(valid) as z:
        arrays = {k: z[k] for k in z.files}
    cases = [("truncated", b) for b in _truncations(data, rng, 14)]
    cases += [("corrupt bytes", b) for b in _flips(data, rng, 10)]
    for name, shape in [("transl", (2**30, 3)), ("points", (2**40, 3)), ("frame_index", (10**12,))]:
        cases.append(("declared shape", _with_header(arrays, name, shape)))

    def changed(**fields):
        return _npz_bytes({**arrays, **fields})

    F = len(arrays["frame_index"])
    cases += [
        ("NaN", changed(transl=np.full_like(arrays["transl"], np.nan))),
        ("inf", changed(cam_to_world=np.full_like(arrays["cam_to_world"], np.inf))),
        ("wrong dtype", changed(frame_index=arrays["frame_index"].astype(np.float32))),
        ("wrong dtype", changed(visible=arrays["visible"].astype(np.float64))),
        ("wrong shape", changed(intrinsics=np.eye(4, dtype=np.float32))),
        (
            "zero frames",
            changed(
                **{k: v[:, :0] for k, v in arrays.items() if k in PER_PERSON_FRAME},
                frame_index=arrays["frame_index"][:0],
                cam_to_world=arrays["cam_to_world"][:0],
            ),
        ),
        ("image size 0", changed(image_size=np.array([0, 0]))),
        ("image size huge", changed(image_size=np.array([10**9, 480]))),
        ("negative focal", changed(intrinsics=np.diag([-500.0, -500.0, 1.0]).astype(np.float32))),
        ("object array", changed(body_model=np.array([{"a": 1}], dtype=object))),
        ("missing field", _npz_bytes({k: v for k, v in arrays.items() if k != "betas"})),
        ("F mismatch", changed(cam_to_world=np.repeat(arrays["cam_to_world"], 2, axis=0)[: F + 1])),
        ("empty", b""),
        ("text", b"this is not an npz\n" * 10),
    ]
    return cases


def json_cases(valid: dict) -> list[tuple[str, bytes]]:
    """(family, bytes) of malformed JSON files starting from ``valid``."""
    rng = random.Random(SEED + 1)
    text = json.dumps(valid).encode()
    cases = [("truncated", text[: rng.randrange(1, len(text) - 1)]) for _ in range(6)]
    cases += [
        ("non-UTF-8", b"\xff\xfe" + text),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
        ("deep nesting", b'{"a":' * 200 + b"1" + b"}" * 200),
        ("NaN", text.replace(b"}", b', "x": NaN}', 1)),
        ("a list", b"[1, 2, 3]"),
        ("empty", b""),
        ("too large", b'{"pad": "' + b"x" * (17 * 2**20) + b'"}'),
    ]
    return cases


# ------------------------------------------------------------------ the CLIs, case by case


RESULT_CLIS = ("export", "evaluate", "view")


def _cli(name):
    if name == "export":
        from josh_jax.export.scene import main
    elif name == "evaluate":
        from josh_jax.evaluate import main
    elif name == "view":
        pytest.importorskip("viser")
        from josh_jax.view import main
    elif name == "solve":
        from josh_jax.solve.__main__ import main
    return main


def _results_argv(cli: str, folder: Path, gt: Path) -> list:
    out = folder.parent / "exports"  # never created: every case is refused first
    return {
        "export": [folder, "--formats", "glb,bvh", "--out-dir", out],
        "evaluate": [folder / "results.npz", gt],
        "view": [folder, "--port", "0"],
    }[cli]


def test_every_malformed_results_file_is_one_line_for_every_cli(world, tmp_path, capsys):
    valid = world / "out" / "results.npz"
    cases = results_cases(valid)
    assert len(cases) >= 35
    seen = 0
    for cli in RESULT_CLIS:
        main = _cli(cli)
        for n, (family, data) in enumerate(cases):
            d = tmp_path / f"{cli}_{n}"
            (d / "out").mkdir(parents=True)
            (d / "out" / "results.npz").write_bytes(data)
            shutil.copy(world / "out" / "summary.json", d / "out")
            gt = d / "gt.npz"
            shutil.copy(valid, gt)
            try:
                line = _one_clean_line(main, _results_argv(cli, d / "out", gt), d, capsys)
            except AssertionError as exc:
                raise AssertionError(f"{cli}, case {n} ({family}): {exc}") from None
            assert "results" in line or "npz" in line, (cli, family, line)
            seen += 1
    assert seen == 3 * len(cases)


SUMMARY_BAD_FPS = [[30, 30], "30", 0, -1, 1e9, True, {"n": 30}]


def summary_cases() -> list[tuple[str, bytes]]:
    cases = json_cases({"fps": 30.0, "video": "v.mp4"})
    return cases + [("bad fps", json.dumps({"fps": v}).encode()) for v in SUMMARY_BAD_FPS]


def test_a_malformed_summary_json_is_one_line(world, tmp_path, capsys):
    cases = summary_cases()
    for cli in ("export", "view"):
        main = _cli(cli)
        for n, (family, data) in enumerate(cases):
            d = tmp_path / f"{cli}_{n}"
            shutil.copytree(world / "out", d / "out")
            (d / "out" / "summary.json").write_bytes(data)
            argv = _results_argv(cli, d / "out", d / "gt.npz")
            try:
                line = _one_clean_line(main, argv, d, capsys)
            except AssertionError as exc:
                raise AssertionError(f"{cli}, case {n} ({family}): {exc}") from None
            assert "summary.json" in line, (cli, family, line)


def bundle_cases(bundle: Path) -> list[tuple[str, str, bytes]]:
    """(family, file name in the bundle, bytes) of malformed bundles."""
    rng = random.Random(SEED + 2)
    win = (bundle / "window_000.npz").read_bytes()
    with np.load(bundle / "window_000.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads((bundle / "bundle.json").read_text())
    cases = [(f, "bundle.json", b) for f, b in json_cases(meta)]
    cases += [("wrong format", "bundle.json", json.dumps({**meta, "format": "x"}).encode())]
    cases += [("window truncated", "window_000.npz", b) for b in _truncations(win, rng, 10)]
    cases += [("window corrupt", "window_000.npz", b) for b in _flips(win, rng, 6)]
    big = next(k for k, v in arrays.items() if v.ndim >= 2)
    cases += [("window declared shape", "window_000.npz", _with_header(arrays, big, (2**33, 3)))]
    cases += [("window NaN", "window_000.npz", _npz_bytes({**arrays, big: np.full_like(arrays[big], np.nan)}))]
    return cases


def test_a_malformed_bundle_is_one_line(world, tmp_path, capsys):
    main = _cli("solve")
    cases = bundle_cases(world / "bundle")
    for n, (family, name, data) in enumerate(cases):
        d = tmp_path / f"b{n}"
        shutil.copytree(world / "bundle", d / "bundle")
        (d / "bundle" / name).write_bytes(data)
        try:
            line = _one_clean_line(main, [d / "bundle", "--out", d / "solved"], d, capsys)
        except AssertionError as exc:
            raise AssertionError(f"case {n} ({family}): {exc}") from None
        assert "bundle" in line or "window" in line, (family, line)


def config_cases() -> list[tuple[str, bytes]]:
    cases = json_cases({"solve": {"iters_stage1": 5}})
    return cases + [("toml", b"[solve\niters_stage1 = "), ("toml non-UTF-8", b"[solve]\nx = '\xff'\n")]


def test_a_malformed_config_file_is_one_line(tmp_path, capsys):
    from josh_jax.demo import main

    video = Path(__file__).resolve().parents[1] / "josh_jax" / "data" / "example" / "walk.mp4"
    for n, (family, data) in enumerate(config_cases()):
        d = tmp_path / f"c{n}"
        d.mkdir()
        cfg = d / ("c.toml" if family.startswith("toml") else "c.json")
        cfg.write_bytes(data)
        try:
            line = _one_clean_line(main, [video, "--out", d / "o", "--config", cfg, "--device", "cpu"], d, capsys)
        except AssertionError as exc:
            raise AssertionError(f"case {n} ({family}): {exc}") from None
        assert "config" in line, (family, line)


def intrinsics_cases() -> list[tuple[str, str, bytes]]:
    rng = random.Random(SEED + 3)
    good_json = json.dumps({"fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480})
    good_yaml = (
        "%YAML:1.0\n---\nimage_width: 640\nimage_height: 480\ncamera_matrix: !!opencv-matrix\n"
        "   rows: 3\n   cols: 3\n   dt: d\n   data: [ 500., 0., 320., 0., 500., 240., 0., 0., 1. ]\n"
    )
    cases = [(f, "k.json", b) for f, b in json_cases(json.loads(good_json)) if f != "NaN"]  # NaN: in fx below
    cases += [
        ("yaml truncated", "k.yaml", good_yaml.encode()[: rng.randrange(10, len(good_yaml) - 20)]) for _ in range(4)
    ]
    cases += [
        (
            "yaml huge matrix",
            "k.yaml",
            good_yaml.replace("rows: 3", "rows: 100000").replace("cols: 3", "cols: 100000").encode(),
        ),
        ("yaml scalar", "k.yaml", b"%YAML:1.0\n---\ncamera_matrix: 3\n"),
        ("zero focal", "k.json", good_json.replace("500.0", "0.0").encode()),
        ("NaN focal", "k.json", good_json.replace("500.0", "NaN", 1).encode()),
        ("width text", "k.json", good_json.replace("640", '"abc"').encode()),
    ]
    return cases


def test_a_malformed_intrinsics_file_is_one_error_line(tmp_path):
    from josh_jax.errors import JoshError
    from josh_jax.frontends.intrinsics import parse

    for n, (family, name, data) in enumerate(intrinsics_cases()):
        p = tmp_path / f"{n}_{name}"
        p.write_bytes(data)
        tracemalloc.start()
        try:
            with pytest.raises(JoshError) as info:
                parse(str(p))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        msg = str(info.value)
        assert "\n" not in msg and msg, (family, msg)
        assert peak < MEMORY_BOUND, (family, peak)


class _Huge:
    def __init__(self, builder, arg):
        self.builder, self.arg = builder, arg

    def __reduce__(self):
        return (self.builder, (self.arg,))


def pickle_cases() -> list[tuple[str, bytes]]:
    try:
        from numpy._core.multiarray import _reconstruct  # what numpy's own pickles call
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct

    rng = random.Random(SEED + 4)
    good = pickle.dumps({"poses": np.zeros((10, 72), np.float32), "names": ["a", "b"]}, protocol=4)
    cases = [("truncated", b) for b in _truncations(good, rng, 8)]
    for _ in range(6):
        b = bytearray(good)
        b[rng.randrange(2, 40)] ^= 0xFF  # the opcodes before the array's bytes
        cases.append(("corrupt", bytes(b)))
    for proto in (2, 4):
        cases += [
            ("huge bytearray", pickle.dumps(_Huge(bytearray, 2**40), protocol=proto)),
            ("huge bytes", pickle.dumps(_Huge(bytes, 2**36), protocol=proto)),
            ("huge list", pickle.dumps(_Huge(list, range(2**40)), protocol=proto)),
            ("huge set", pickle.dumps(_Huge(frozenset, range(2**33)), protocol=proto)),
        ]
    cases.append(("huge empty array", pickle.dumps(_Reconstruct(_reconstruct, (2**36,)), protocol=2)))
    cases.append(("deep nesting", b"\x80\x02" + b"]" * 1 + b"(" * 100_000 + b"t" * 100_000 + b"."))
    return cases


class _Reconstruct:
    def __init__(self, fn, shape):
        self.fn, self.shape = fn, shape

    def __reduce__(self):
        return (self.fn, (np.ndarray, self.shape, b"b"))


def test_a_malformed_dataset_pickle_is_one_error_and_memory_stays_bounded(tmp_path):
    from josh_jax.errors import JoshError
    from josh_jax.eval.safe_pickle import load_pickle

    for n, (family, data) in enumerate(pickle_cases()):
        p = tmp_path / f"{n}.pkl"
        p.write_bytes(data)
        tracemalloc.start()
        try:
            try:
                load_pickle(p)
                loaded = True  # a truncation can end on a whole object: then it must be small
            except JoshError as exc:
                loaded = False
                assert "\n" not in str(exc), (family, str(exc))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < MEMORY_BOUND, (family, peak)
        assert not (loaded and family.startswith("huge")), family


def test_the_probe_counts_at_least_150_cases(world):
    """The issue's floor: at least 150 malformed inputs across the CLIs and readers (counted)."""
    n = (
        len(RESULT_CLIS) * len(results_cases(world / "out" / "results.npz"))
        + 2 * len(summary_cases())
        + len(bundle_cases(world / "bundle"))
        + len(config_cases())
        + len(intrinsics_cases())
        + len(pickle_cases())
    )
    assert n >= 150, n
