"""One video's run as stages: prepare, front ends, solve each window, finish (join and export).

``python -m josh_jax.demo`` runs the stages in order in one process (:func:`run`);
``python -m josh_jax.batch`` runs them as Ray tasks, each told by a :class:`josh_jax.run.RunSpec`.
Everything of a run is written to ``OUT.work/`` first (finished windows are kept there, so an
interrupted run resumes where it stopped) and moved to ``OUT`` only when complete. The window solve
itself is :mod:`josh_jax.run.window`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError

from .methods import Method, method
from .spec import EXAMPLE_CLIP, RunSpec
from .window import WindowSettings, hold_cameras
from .window import solve_window as _solve_one
from .window import solve_windows as _solve_many


class DemoError(JoshError, RuntimeError):
    """A one-line, actionable reason the demo cannot go on."""


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def _fingerprint(video: Path, spec: RunSpec, cfg) -> dict:
    """What a resumed run must share with the interrupted one: the video (path, size, mtime), the clip
    range, the body model, the front ends, the checked config, and a non-default method (with JOSH3R's
    model file)."""
    st = video.stat()
    return {
        "video": str(video.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "start": spec.start,
        "frames": spec.frames,
        "body_model": str(spec.body_model),
        "frontends": spec.frontends,
        "config": cfg.to_dict(),
        **({"method": spec.method} if spec.method != "josh" else {}),
        **({"josh3r_model": _model_stamp(spec, cfg)} if method(spec.method).josh3r_pairs else {}),
    }


def _model_stamp(spec: RunSpec, cfg) -> dict:
    """josh3r.onnx's path, size and mtime: a re-exported model (e.g. real weights after random ones)
    must not resume on the work folder's pair outputs of the old one."""
    from ..frontends.official.josh3r import josh3r_path

    path = josh3r_path(spec.models or cfg.frontends.models_dir)
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class WorkFolderError(DemoError):
    """``OUT.work`` exists and this run may not use or remove it (nothing is touched)."""


def _read_fingerprint(fp_path: Path) -> str | None:
    """fingerprint.json's text when it is a josh_jax fingerprint (a JSON object naming a video), else None."""
    from ..jsonfile import JsonFileError, read_json

    try:
        data = read_json(fp_path, "fingerprint.json", "", max_bytes=2**20)
        text = fp_path.read_text()
    except (OSError, JsonFileError):
        return None
    return text if "video" in data else None


def _prepare_work(out: Path, fp: dict, fresh: bool) -> Path:
    """``OUT.work`` for this run: resumed when it holds this run's fingerprint, removed only when it is a
    josh_jax work folder (its fingerprint) and the same run with ``--fresh`` or another run with ``--fresh``;
    anything else stops with one line and touches nothing."""
    work = out.with_name(out.name + ".work")
    fp_path = work / "fingerprint.json"
    fp_text = json.dumps(fp, sort_keys=True, default=str)
    if work.exists() or work.is_symlink():
        if work.is_symlink() or not work.is_dir():
            raise WorkFolderError(
                f"{work} exists and is not a folder this demo made; move it away or choose another --out"
            )
        theirs = _read_fingerprint(fp_path)
        if theirs is None:
            raise WorkFolderError(
                f"{work} exists and is not a josh_jax work folder (no readable fingerprint.json); nothing was "
                "touched: move or remove it yourself, or choose another --out"
            )
        same = theirs == fp_text
        if not same and not fresh:
            raise WorkFolderError(
                f"{work} holds an interrupted run of another video or other settings; rerun with --fresh to "
                "discard it, or choose another --out"
            )
        if same and not fresh:
            from josh_jax._cli.atomic import clean_stale

            clean_stale(work)
            clean_stale(work / "solved")  # half-written files of a run killed with kill -9
            done = sorted((work / "solved").glob("window_*_results.npz")) if (work / "solved").exists() else []
            _log(f"resuming the interrupted run in {work} ({len(done)} window(s) already solved)")
            return work
        shutil.rmtree(work)
    (work / "solved").mkdir(parents=True)
    fp_path.write_text(fp_text)
    return work


def save_window(w, model, solved, out_prefix: Path, objective) -> dict:
    """Write one solved window (``solved``: its :class:`josh_jax.run.window.WindowSolve`, not stacked):
    ``_init.npz`` (the baseline's result, or without one the front ends' starting point, for
    summary.json's alignment; the window info's ``init`` says which), ``_loss.npz``, ``.json``, then
    ``_results.npz``, whose presence marks it finished. Returns the window's info. ``objective``
    (:class:`josh_jax.objective.ObjectiveConfig`) adds its post-solve stages (``josh+``: the per-frame
    refinement) to the joint results."""
    from ..problem import entry_counts, problem_sizes
    from ..results import save_npz

    res = solved.result
    for name, it in res.nan_stages():
        _log(
            f"warning: non-finite loss at {name} iteration {it} of frames "
            f"{w.frame_index[0]}-{w.frame_index[-1]}; the last finite state was kept"
        )
    solved.init_results(w, model).save(out_prefix.with_name(out_prefix.name + "_init.npz"))
    hist = {f"s1_{k}": np.asarray(v) for k, v in res.stage1.history._asdict().items()}
    hist.update({f"s2_{k}": np.asarray(v) for k, v in res.stage2.history._asdict().items()})
    save_npz(out_prefix.with_name(out_prefix.name + "_loss.npz"), hist)
    info = {
        "frames": [int(w.frame_index[0]), int(w.frame_index[-1])],
        "keyframes": int(w.num_keyframes),
        "tracks": int(w.num_tracks),
        "sizes": problem_sizes(solved.problem)._asdict(),
        **entry_counts(solved.problem),
        "final_loss": float(np.asarray(res.stage2.history.total)[-1]),
        "seconds_joint": solved.seconds_joint,
        "init": "start" if solved.seconds_init is None else "baseline",
        "seconds_front_ends_only": solved.seconds_init or 0.0,
    }
    out_prefix.with_name(out_prefix.name + ".json").write_text(json.dumps(info, indent=1))
    # results last: their presence marks the window as finished
    solved.results(w, model, objective).save(out_prefix.with_name(out_prefix.name + "_results.npz"))
    return info


def solve_windows_vmapped(items: list) -> list[dict]:
    """Stage 3 for several windows at once (of one or several videos): one vmapped
    :func:`josh_jax.solve.solve_batch` for the joint solves and, with ``output.baseline``, one for
    the baselines.

    ``items``: (prepared, windows, i) triples whose problems share a size bucket, a body model,
    loss weights and solver settings (:func:`window_bucket` equal); returns their infos in order.
    Finished windows are not re-solved. Agrees with :func:`solve_window` to float tolerance."""
    out: list = [None] * len(items)
    todo = []
    for j, (p, windows, i) in enumerate(items):
        if window_done(p, i):
            out[j] = json.loads(window_prefix(p, i).with_suffix(".json").read_text())
        else:
            todo.append((j, p, windows, i))
    if not todo:
        return out
    p0 = todo[0][1]
    settings = WindowSettings.of(p0.cfg)
    for _, p, _, _ in todo[1:]:
        if (WindowSettings.of(p.cfg), p.model.name) != (settings, p0.model.name):
            raise ValueError(
                "solve_windows_vmapped: the windows need the same solver settings, weights, objective, baseline "
                "and body model"
            )
    _log(f"solving {len(todo)} window(s) together (vmap) ...")
    solved = _solve_many(
        [(windows[i], f"window {i + 1}/{len(windows)}", _start(p)) for _, p, windows, i in todo],
        p0.model,
        settings,
        _log,
    )
    for one, (j, p, windows, i) in zip(solved, todo):
        out[j] = save_window(windows[i], p.model, one, window_prefix(p, i), p.cfg.objective)
    return out


def _start(p: Prepared):
    """The problem's starting point for ``p``'s method: JOSH3R's cameras (:func:`warm_problem`) or None."""
    return (lambda pr, win: warm_problem(p, pr, win)) if p.method.warm_start else None


def window_bucket(p: Prepared, windows: list, i: int) -> str:
    """A key equal for windows that :func:`solve_windows_vmapped` can solve together: the problem's
    bucket sizes, the solver settings, the weights and the body model."""
    from ..problem import build_problem, problem_sizes

    sizes = problem_sizes(build_problem(windows[i], p.model, WindowSettings.of(p.cfg).problem_config()))
    return json.dumps(
        [
            sizes._asdict(),
            dataclasses.asdict(p.cfg.solve),
            list(map(float, p.cfg.weights)),
            dataclasses.asdict(p.cfg.objective),
            p.cfg.output.baseline,
            p.model.name,
            p.method.name,  # a warm start changes the problem's structure
        ],
        sort_keys=True,
        default=str,
    )


def plot_losses(solved: Path, n: int, path: Path) -> None:
    """loss_curve.png of the solved windows (see :func:`josh_jax.export.plots.plot_losses`)."""
    from josh_jax.export.plots import plot_losses as _plot

    from ..npz import read_npz

    _plot([read_npz(solved / f"window_{i:03d}_loss.npz", what="loss history") for i in range(n)], path)


class _Stage:
    """A line when a stage starts and one with its elapsed time when it ends; records the seconds."""

    def __init__(self, name: str, seconds: dict, key: str):
        self.name, self.seconds, self.key = name, seconds, key

    def __enter__(self):
        _log(f"{self.name} ...")
        self.t = time.perf_counter()
        return self

    def __exit__(self, kind, *_):
        dt = time.perf_counter() - self.t
        self.seconds[self.key] = self.seconds.get(self.key, 0.0) + dt
        if kind is None:
            _log(f"{self.name}: done in {dt:.1f} s")


def _check_inputs_and_output(spec: RunSpec, video: Path):
    """The input first (a missing video is named before an occupied output folder), then the output:
    not an input, not a file, empty unless --overwrite, writable. Returns the probed video."""
    from josh_jax._cli.atomic import check_output

    from ..frontends import probe

    info = probe(video, spec.start, spec.frames)
    model_path = None if str(spec.body_model).lower() in ("open", "josh-open-body", "default") else spec.body_model
    check_output(
        spec.out, inputs=[video, model_path, spec.config, spec.models], overwrite=spec.overwrite, also=[spec.work]
    )
    return info


def _example_check(res, gt_path: Path) -> dict:
    """Camera path length and per-frame camera error (after aligning the first frames) vs the clip's truth."""
    from ..eval.metrics import path_length

    with np.load(gt_path) as z:
        T = z["cam_to_world"].astype(np.float64)
    Tg = np.linalg.inv(T[0]) @ T
    f = res.frame_index
    c, cg = res.cam_to_world[:, :3, 3].astype(np.float64), Tg[f, :3, 3]
    return {
        "camera_path_m": path_length(c),
        "true_camera_path_m": path_length(cg),
        "camera_error_max_m": float(np.linalg.norm(c - cg, axis=1).max()),
        "camera_error_mean_m": float(np.linalg.norm(c - cg, axis=1).mean()),
    }


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What every stage of one video's run needs (see :func:`prepare`): the run's specification, the
    checked config, the probed video, the body model and the ``OUT.work`` folder."""

    spec: RunSpec
    cfg: object  # josh_jax.config.DemoConfig
    info: object  # josh_jax.frontends.VideoInfo
    model: object  # josh_jax.body.BodyModel
    video: Path
    work: Path

    @property
    def method(self) -> Method:
        return method(self.spec.method)

    @property
    def bundle_dir(self) -> Path:
        return self.work / "bundle"

    @property
    def solved(self) -> Path:
        return self.work / "solved"


def prepare(spec: RunSpec, attach: bool = False, lock=None) -> Prepared:
    """Stage 1 (decode/check): config, input and output checks, body model, and the work folder.

    ``attach=False`` (the demo, or the first stage of a batch video) creates ``OUT.work`` or resumes
    a matching one; ``attach=True`` (later stages of a batch video, possibly in another process)
    only opens the work folder that an earlier ``prepare`` made, which must have the same fingerprint.
    ``lock``: the demo's :class:`josh_jax._cli.lock.RunLock`, taken once the output is known to be usable.
    The work folder keeps ``spec`` as ``run.json``."""
    from .. import body as jbody
    from .. import config as jconfig
    from ..frontends.official import require_models

    video = spec.video or EXAMPLE_CLIP
    cfg = jconfig.load(spec.config, spec.overrides)
    models_dir = spec.models or cfg.frontends.models_dir  # --models wins over the config's, as below
    if spec.frontends == "official":
        require_models(models_dir)  # a cheap check before the video is decoded
    if method(spec.method).josh3r_pairs:
        from ..frontends.official.josh3r import josh3r_path

        josh3r_path(models_dir)  # missing josh3r.onnx: one line with the export command, before decoding
    info = _check_inputs_and_output(spec, video)
    if lock is not None and not attach and lock.fd is None:
        lock.acquire()
    flags = {"device": spec.device}  # front-end flags given on the command line win over the file/--set
    if spec.static_camera:
        flags["static_camera"] = True
    if spec.camera != "auto":
        flags["camera"] = spec.camera
    if spec.focal is not None:  # given in original pixels, the front ends work at long side work_side
        from ..frontends.intrinsics import working_focal

        flags["focal"] = working_focal(spec.focal, info, cfg.frontends.work_side)
    if spec.max_people is not None:
        flags["max_people"] = spec.max_people
    if spec.models:
        flags["models_dir"] = str(spec.models)
    cfg = jconfig.check(dataclasses.replace(cfg, frontends=dataclasses.replace(cfg.frontends, **flags)))
    if spec.objective is not None:
        cfg = jconfig.apply(cfg, {"objective.name": spec.objective})
    if spec.no_overlay:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, overlay=False))
    if spec.baseline:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, baseline=True))
    if spec.rerun:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, rerun=True))
        try:
            import rerun  # noqa: F401
        except ImportError:
            raise DemoError("--rerun needs rerun-sdk: pip install -e '.[viz]'") from None
    model = jbody.load(spec.body_model)
    if not attach:
        _log(
            f"{info.path.name}: {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.1f} fps; "
            f"body model {model.name}"
        )
    from josh_jax.frontends.intrinsics import (
        apply_to_config,
    )  # --intrinsics: known K into the front ends, focal held in the solve

    cfg = apply_to_config(
        cfg, spec.intrinsics, info, spec.frontends, spec.free_intrinsics, _log if not attach else (lambda m: None)
    )
    fp = _fingerprint(info.path, spec, cfg)
    if attach:
        work = spec.work
        fp_path = work / "fingerprint.json"
        if _read_fingerprint(fp_path) != json.dumps(fp, sort_keys=True, default=str):
            raise DemoError(f"{work} is missing or belongs to another run; run the same command again")
    else:
        work = _prepare_work(spec.out, fp, spec.fresh)
        (work / RUN_SPEC).write_text(json.dumps(spec.to_dict(), indent=1))
    return Prepared(spec=spec, cfg=cfg, info=info, model=model, video=video, work=work)


def _resumed_bundle(bundle_dir: Path, num_vertices: int) -> tuple | None:
    """A resumed work folder's front-end outputs as (meta, windows), read once; when they do not read
    back whole (a truncated window, a damaged bundle.json or tracks.npz) they are removed, said, and
    None is returned so that they are computed again: never trusted, never a crash."""
    from ..bundle import load as load_bundle
    from ..frontends import load_tracks

    if not bundle_dir.exists():
        return None
    try:
        loaded = load_bundle(bundle_dir, num_vertices)
        if (bundle_dir / "tracks.npz").exists():
            load_tracks(bundle_dir / "tracks.npz")
        return loaded
    except JoshError as exc:  # BundleError, NpzError, FrontEndError
        why = str(exc)
    _log(f"the work folder's front-end outputs are damaged ({why[:200]}); computing them again")
    shutil.rmtree(bundle_dir)
    return None


def front_ends(p: Prepared, seconds: dict | None = None) -> tuple[Prepared, dict, list]:
    """Stage 2: the front ends, kept in the work folder (a resumed run skips them).

    Returns (prepared with the camera-dependent solve settings, bundle metadata, windows);
    ``seconds`` gets ``frontends_<stage>`` entries."""
    from ..bundle import load as load_bundle
    from ..frontends import run_frontends, write_bundle
    from ..frontends.official import run_official

    spec, cfg, bundle_dir = p.spec, p.cfg, p.bundle_dir
    seconds = {} if seconds is None else seconds
    resumed = _resumed_bundle(bundle_dir, p.model.num_vertices)  # (meta, windows), or None
    if resumed is None:
        run = run_frontends if spec.frontends == "default" else run_official
        t = time.perf_counter()
        fo = run(p.info, p.model, cfg.frontends, log=_log)
        _log(
            f"front ends: done in {time.perf_counter() - t:.1f} s ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in fo.seconds.items())
            + ")"
        )
        write_bundle(bundle_dir, fo, spec.body_model, spec.frontends)
        seconds.update({f"frontends_{k}": v for k, v in fo.seconds.items()})
    meta, windows = resumed or load_bundle(bundle_dir, p.model.num_vertices)
    if resumed:  # the times recorded when they ran
        seconds.update({f"frontends_{k}": float(v) for k, v in meta.seconds.items() if isinstance(v, (int, float))})
    if p.method.josh3r_pairs and not (p.work / JOSH3R_MOTION).is_file():
        with _Stage("JOSH3R on the first person track's frame pairs", seconds, "josh3r"):
            _run_josh3r_pairs(p, windows)
    cfg = dataclasses.replace(cfg, solve=hold_cameras(cfg.solve, meta))  # what the camera model fixed
    return dataclasses.replace(p, cfg=cfg), meta, windows


def window_prefix(p: Prepared, i: int) -> Path:
    """``OUT.work/solved/window_<i>``: the prefix of window i's files; ``_results.npz`` marks it finished."""
    return p.solved / f"window_{i:03d}"


WINDOW_FILES = ("_init.npz", "_loss.npz", ".json", "_results.npz")  # what save_window writes, results last


def window_done(p: Prepared, i: int) -> bool:
    """Window i was solved in an earlier run and its files read back whole. A damaged file (a disk filled
    or a machine stopped mid-write outside the atomic writers) is not trusted: the window's files are
    removed, it is said, and the window is solved again."""
    prefix = window_prefix(p, i)
    paths = [prefix.with_name(prefix.name + suffix) for suffix in WINDOW_FILES]
    if not paths[-1].is_file():
        return False
    from ..jsonfile import read_json
    from ..npz import NpzError, read_npz
    from ..results import Results, ResultsError

    try:
        Results.load(paths[0])
        read_npz(paths[1], what="loss history")
        read_json(paths[2], "window info", "")
        Results.load(paths[3])
        return True
    except (ResultsError, NpzError, OSError, ValueError) as exc:
        _log(f"window {i + 1}: its saved files are damaged ({str(exc)[:160]}); solving it again")
        for path in paths:
            path.unlink(missing_ok=True)
        return False


def solve_window(p: Prepared, windows: list, i: int) -> dict:
    """Stage 3, once per window: the joint solve of window i (and with ``--baseline`` the
    front-ends-only one; skipped when finished); returns the window's info (also saved as
    ``window_<i>.json``)."""
    prefix, w, n = window_prefix(p, i), windows[i], len(windows)
    if window_done(p, i):
        return json.loads(prefix.with_suffix(".json").read_text())
    _log(
        f"window {i + 1}/{n}: frames {w.frame_index[0]}-{w.frame_index[-1]}, "
        f"{w.num_keyframes} keyframes, {w.num_tracks} person track(s); joint solve"
        + (", then front ends only" if p.cfg.output.baseline else "")
    )
    tw = time.perf_counter()
    solved = _solve_one(w, p.model, WindowSettings.of(p.cfg), label=f"window {i + 1}/{n}", start=_start(p), log=_log)
    info = save_window(w, p.model, solved, prefix, p.cfg.objective)
    _log(f"window {i + 1}/{n}: done in {time.perf_counter() - tw:.1f} s")
    return info


def finish(p: Prepared, meta: dict, windows: list, seconds: dict, t_all: float | None = None) -> dict:
    """Stages 4-5: join the solved windows and export every output into ``OUT`` (a temp folder moved
    into place at the end), then remove the work folder. Returns the summary (also summary.json).
    ``seconds``: the earlier stages' seconds (``total`` is set here: since ``t_all`` when given, else
    the sum of the stages)."""
    from ..join import join_windows
    from ..results import Results

    if not p.method.optimizes:
        return run_josh3r_method(p, meta, windows, seconds, t_all)
    solved = p.solved
    seconds = dict(seconds)
    infos = [json.loads(window_prefix(p, i).with_suffix(".json").read_text()) for i in range(len(windows))]
    with _Stage(f"joining {len(windows)} window(s)", seconds, "join"):
        res, sims = join_windows([Results.load(solved / f"window_{i:03d}_results.npz") for i in range(len(windows))])
        init, _ = join_windows([Results.load(solved / f"window_{i:03d}_init.npz") for i in range(len(windows))])
    # without --baseline the windows' _init.npz hold the front ends' starting point (no solve): it
    # serves summary.json's alignment (bodies in the camera frame as fitted) but is no output
    baseline = all(info.get("init", "baseline") == "baseline" for info in infos)
    extra = {
        "windows": len(windows),
        "window_info": infos,
        "window_similarities": [{"scale": s, "R": R.tolist(), "t": tt.tolist()} for s, R, tt in sims],
    }
    return export_outputs(
        p,
        meta,
        res,
        init if baseline else None,
        seconds,
        extra,
        loss_windows=len(windows),
        t_all=t_all,
        front_ends=init,
    )


def export_outputs(
    p: Prepared,
    meta,  # josh_jax.bundle.BundleMeta
    res,
    init,
    seconds: dict,
    extra: dict,
    loss_windows: int | None = None,
    t_all: float | None = None,
    front_ends=None,
) -> dict:
    """Stage 5: every output of ``res`` (:class:`josh_jax.results.Results`; ``init`` the front-ends-only
    baseline, written as init.npz, or None) into ``OUT`` (a temp folder moved into place at the end),
    then remove the work folder. ``extra``: summary fields of the method (e.g. the windows);
    ``loss_windows``: the number of solved windows whose losses make loss_curve.png (None: no
    optimization, no curve); ``front_ends``: what summary.json's alignment compares the joint result
    with (default ``init``; the front ends' starting point when there is no baseline). Returns the
    summary (also summary.json)."""
    from josh_jax._cli.atomic import atomic_folder

    from ..frontends import load_tracks

    spec, cfg, model, info, out = p.spec, p.cfg, p.model, p.info, p.spec.out
    seconds = dict(seconds)
    with atomic_folder(out, out.name) as tmp:
        outputs = ["results.npz"] + (["init.npz"] if init is not None else []) + ["trajectory.png"]
        outputs += ["loss_curve.png"] if loss_windows is not None else []
        outputs += ["scene.glb"] if cfg.output.glb else []
        with _Stage("export: " + ", ".join(outputs), seconds, "export"):
            res.save(tmp / "results.npz")
            if init is not None:
                init.save(tmp / "init.npz")
            from josh_jax.export.plots import plot_trajectory

            plot_trajectory(res, init, tmp / "trajectory.png")
            if loss_windows is not None:
                plot_losses(p.solved, loss_windows, tmp / "loss_curve.png")
            if cfg.output.glb:
                from josh_jax.export.scene import write_glb

                write_glb(res, model, tmp / "scene.glb", every=cfg.output.glb_every)
        from josh_jax.export.anim import write_motion_exports

        outputs += write_motion_exports(res, model, tmp, info.fps)  # animation.glb, bvh/person_<ID>.bvh
        if cfg.output.overlay:
            from josh_jax.export.overlay import write_overlay
            from josh_jax.export.plots import pick_stills

            stills = tmp / "overlay_frames"
            stills.mkdir()
            picks = {f: stills / f"frame_{f:05d}.png" for f in pick_stills(res, 3)}
            with _Stage("overlay.mp4 and stills (frames with the most people tracked)", seconds, "overlay"):
                write_overlay(res, model, info, tmp / "overlay.mp4", cfg.output.overlay_side, sample_png=picks)
            outputs += ["overlay.mp4", "overlay_frames/"]
        if cfg.output.rerun:
            from josh_jax.export.rrd import write_rrd

            with _Stage("recording.rrd", seconds, "rerun"):
                write_rrd(res, model, info, tmp / "recording.rrd")
            outputs.append("recording.rrd")
        tracks = load_tracks(p.bundle_dir / "tracks.npz")
        summary = {
            "video": str(info.path),
            "frames": int(info.num_frames),
            "start": info.start,
            "fps": info.fps,
            "method": spec.method,
            "people": len(tracks),
            "windows": extra.get("windows"),
            "body_model": model.name,
            "front_ends": spec.frontends,
            "static_camera": meta.camera == "static",
            "camera": {
                "mode": meta.camera,
                "evidence": meta.camera_evidence,
                "keyframe_focals": None if meta.keyframe_focals is None else list(meta.keyframe_focals),
            },
            "coverage": meta.coverage
            or {
                "first": int(res.frame_index[0]),
                "last": int(res.frame_index[-1]),
                "frames": int(len(res.frame_index)),
                "reason": "",
            },
            "registered_keyframes": meta.registered,
            "keyframes": meta.keyframes,
            "focal_working_px": meta.focal,
            **{k: v for k, v in extra.items() if k != "windows"},
            "outputs": outputs,
            "config": cfg.to_dict(),
        }
        summary["alignment"] = _alignment(res, init if front_ends is None else front_ends, tracks, meta, info)
        summary["warnings"] = _warnings(summary)
        video = p.video
        gt = video.with_name(video.stem + "_gt.npz")
        if video == EXAMPLE_CLIP and gt.is_file() and info.start == 0:
            summary["example_clip_check"] = _example_check(res, gt)
        seconds["total"] = (
            time.perf_counter() - t_all if t_all is not None else sum(v for k, v in seconds.items() if k != "total")
        )
        summary["seconds"] = seconds
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    shutil.rmtree(p.work, ignore_errors=True)
    return summary


RUN_SPEC = "run.json"  # in OUT.work: the RunSpec of the run (RunSpec.to_dict)
JOSH3R_MOTION = "josh3r_motion.npz"  # in OUT.work: JOSH3R's per-pair outputs (a resumed run skips the pairs)


def _run_josh3r_pairs(p: Prepared, windows: list) -> None:
    """JOSH3R on the first person track's frame pairs (the human front end's fits: VIMO on the official
    path, the embedded body fit otherwise), saved as ``OUT.work/josh3r_motion.npz``."""
    from .. import josh3r
    from ..frontends import load_tracks
    from ..frontends.official.josh3r import Josh3rSession

    tracks = load_tracks(p.bundle_dir / "tracks.npz")
    if not tracks:
        raise DemoError("JOSH3R needs a person track, and the front ends found none in this clip")
    lead = sorted(tracks)[0]
    session = Josh3rSession(p.cfg.frontends.models_dir or p.spec.models, p.spec.device)
    try:
        motion = josh3r.run_pairs(session, p.info, tracks[lead], float(windows[0].scale_to_original), lead=lead)
    except ValueError as exc:
        raise DemoError(f"JOSH3R: {exc}") from None
    josh3r.save_motion(p.work / JOSH3R_MOTION, motion)


def warm_problem(p: Prepared, problem, w):
    """``--method josh3r+joint``: ``problem`` (of window ``w``) started at JOSH3R's cameras and metric
    scene scale (:func:`josh_jax.josh3r.warm_start`); the default start, with a warning, where JOSH3R
    cannot place the window (its lead person not seen in it) or the front end's cameras are held (a
    static or rotating camera), written out (:func:`josh_jax.josh3r.default_start`) so that every
    problem of a josh3r+joint run has one structure (:func:`solve_windows_vmapped` stacks them)."""
    from .. import josh3r

    where = f"frames {w.frame_index[0]}-{w.frame_index[-1]}"
    if w.cam_rotation is not None:
        _log(f"josh3r+joint: {where}: the front end's cameras are kept (a static or rotating camera)")
        return josh3r.default_start(problem)
    motion = josh3r.load_motion(p.work / JOSH3R_MOTION)
    rows = np.where(np.asarray(w.track_ids) == motion.lead)[0]
    if not len(rows) or not w.track_valid[rows[0]].any():
        _log(f"josh3r+joint: {where}: person {motion.lead} is not in this window; the default start is used")
        return josh3r.default_start(problem)
    f_init = float(np.asarray(problem.init_focal))
    cams = josh3r.keyframe_cameras(motion, w, p.model, f_init, int(rows[0]))
    return josh3r.warm_start(problem, w, cams, josh3r.keyframe_scales(motion, w))


def run_josh3r_method(p: Prepared, meta: dict, windows: list, seconds: dict, t_all: float | None = None) -> dict:
    """``--method josh3r``: JOSH3R's trajectory (:func:`_run_josh3r_pairs`, run by :func:`front_ends`),
    no optimization; then the same outputs as the joint optimization's (no init.npz, no
    loss_curve.png). See docs/josh3r.md."""
    from .. import josh3r
    from ..frontends import load_tracks

    tracks = load_tracks(p.bundle_dir / "tracks.npz")
    motion = josh3r.load_motion(p.work / JOSH3R_MOTION)
    w0 = windows[0]
    s = float(w0.scale_to_original)
    # the human front end's camera (its focal, the working principal point) in original pixels
    K = np.array(
        [[w0.hmr_focal * s, 0, w0.principal_point[0] * s], [0, w0.hmr_focal * s, w0.principal_point[1] * s], [0, 0, 1]]
    )
    res = josh3r.build_results(motion, tracks, p.model, K, (p.info.width, p.info.height), motion.lead)
    extra = {
        "josh3r": {"lead_track": int(motion.lead), "pairs": int(len(motion.rel_R)), "point_maps": len(motion.points)}
    }
    return export_outputs(p, meta, res, None, seconds, extra, loss_windows=None, t_all=t_all)


def run(spec: RunSpec, lock=None) -> dict:
    """The whole demo in this process: :func:`prepare`, :func:`front_ends`, :func:`solve_window` for
    each window, :func:`finish` (``python -m josh_jax.batch`` runs the same stages as Ray tasks)."""
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    p = prepare(spec, lock=lock)
    seconds["decode_check"] = time.perf_counter() - t
    p, meta, windows = front_ends(p, seconds)
    t = time.perf_counter()
    for i in range(len(windows) if p.method.optimizes else 0):
        solve_window(p, windows, i)
    seconds["solve"] = time.perf_counter() - t
    return finish(p, meta, windows, seconds, t_all)


def _alignment(res, init, tracks: dict, meta: dict, info) -> dict:
    """summary.json's ``alignment``: per person, the 2D error of the joint result and of the front ends
    alone against the track's landmarks (% of the box height; :mod:`josh_jax.eval.alignment`)."""
    from ..eval.alignment import alignment

    work = meta.work_size
    if not work or not any(t.landmarks is not None for t in tracks.values()):
        return {}  # the official front ends keep no landmarks
    return alignment(res, tracks, max(info.width, info.height) / max(work), init)


def _warnings(summary: dict) -> list[str]:
    """summary.json's ``warnings``: what the user should know about this result, in plain words (the
    camera model the front ends fell back to; people the joint result draws off the video)."""
    from ..eval.alignment import WORSE_BY, worse_people

    out = []
    cam = ((summary.get("camera") or {}).get("evidence") or {}).get("warning")
    if cam:
        out.append(f"camera: {cam}")
    bad = worse_people(summary.get("alignment") or {})
    if bad:
        out.append(
            f"alignment: the joint result draws person(s) {', '.join(bad)} more than {WORSE_BY:.0f} point(s) further "
            "from the people in the video than the front ends alone"
        )
    return out


def finished_work(work: Path, solved_only: bool) -> bool:
    if any((work / "solved").glob("window_*_results.npz")):
        return True
    return not solved_only and (work / "bundle" / "bundle.json").is_file()


def drop_unfinished(work: Path, solved_only: bool) -> bool:
    """Remove ``work`` unless it holds finished work worth resuming (solved windows; after Ctrl-C also
    finished front ends). Returns whether it was kept. Only a folder with our fingerprint is touched."""
    if not (work / "fingerprint.json").is_file():
        return False
    if finished_work(work, solved_only):
        return True
    shutil.rmtree(work, ignore_errors=True)
    return False
