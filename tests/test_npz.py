"""The checked .npz reader (josh_jax.npz): truncated, corrupt and hostile files end in one NpzError line,
never a zipfile/zlib/numpy exception or a huge allocation; good files read exactly as np.load does."""

import io
import zipfile

import numpy as np
import pytest

from josh_jax.npz import NpzError, read_npz
from josh_jax.results import Results, ResultsError


def _good(path, compressed=True):
    rng = np.random.default_rng(0)
    arrays = dict(
        a=rng.normal(size=(7, 3)).astype(np.float32),
        b=np.arange(5, dtype=np.int64),
        c=np.asfortranarray(rng.normal(size=(4, 6))),
        s=np.array("josh-open-body"),
        t=np.ones((2, 3), bool),
    )
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


@pytest.mark.parametrize("compressed", [True, False])
def test_a_good_file_reads_as_np_load_does(tmp_path, compressed):
    arrays = _good(tmp_path / "g.npz", compressed)
    got = read_npz(tmp_path / "g.npz")
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
        assert got[k].flags.writeable


def test_truncated_files_at_every_kind_of_offset_are_one_error(tmp_path):
    data = (_good(tmp_path / "g.npz"), (tmp_path / "g.npz").read_bytes())[1]
    rng = np.random.default_rng(1)
    for cut in sorted(set(rng.integers(1, len(data) - 1, 40).tolist()) | {1, 10, len(data) // 2, len(data) - 1}):
        p = tmp_path / f"cut{cut}.npz"
        p.write_bytes(data[:cut])
        with pytest.raises(NpzError) as e:
            read_npz(p)
        assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_flipped_bytes_never_escape_as_another_exception(tmp_path):
    data = bytearray(((_good(tmp_path / "g.npz", compressed=False)), (tmp_path / "g.npz").read_bytes())[1])
    rng = np.random.default_rng(2)
    for i in range(60):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), 3):
            bad[pos] ^= 0xFF
        p = tmp_path / f"flip{i}.npz"
        p.write_bytes(bytes(bad))
        try:
            read_npz(p)  # some flips land in padding and leave a readable file
        except NpzError as exc:
            assert "\n" not in str(exc)


def _zip_with(path, name, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, payload)


def test_a_header_that_lies_about_its_size_allocates_nothing(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2**30,)})
    _zip_with(tmp_path / "huge.npz", "x.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(NpzError, match="declares shape"):
        read_npz(tmp_path / "huge.npz")


def test_object_arrays_and_bad_crc_are_refused(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _zip_with(tmp_path / "obj.npz", "o.npy", buf.getvalue())
    with pytest.raises(NpzError, match="Python objects"):
        read_npz(tmp_path / "obj.npz")
    _good(tmp_path / "g.npz", compressed=False)
    raw = bytearray((tmp_path / "g.npz").read_bytes())
    i = raw.index(np.arange(5, dtype=np.int64).tobytes())  # b's data, stored uncompressed
    raw[i] ^= 0x01
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    with pytest.raises(NpzError, match="corrupt"):
        read_npz(tmp_path / "crc.npz")


def test_results_load_says_one_line(tmp_path):
    (tmp_path / "r.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ResultsError) as e:
        Results.load(tmp_path / "r.npz")
    assert "\n" not in str(e.value) and "write it again" in str(e.value)
