"""The demo's argument handling (the full synthetic run is exercised by the solve CLI test)."""
from josh_jax.demo import main


def test_video_argument_is_refused_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "video front ends" in err
    assert not (tmp_path / "o").exists()


def test_existing_output_is_refused(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep me")
    assert main(["--out", str(tmp_path / "o")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "o" / "x").read_text() == "keep me"
