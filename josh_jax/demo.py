"""``python -m josh_jax.demo [VIDEO] [--out DIR]``: from a video to a 4D reconstruction you can look at.

With no VIDEO it runs the bundled example clip (josh_jax/data/example/walk.mp4,
CC0). Stages: decode -> front ends (embedded defaults, or the official ONNX
models) -> one problem per solve window -> joint optimization (and the
front-ends-only baseline) -> windows joined by similarity transforms ->
outputs. Everything of one run is written to ``DIR.work/`` first (finished
windows are kept there, so an interrupted run resumes where it stopped) and
moved to DIR only when complete.

Outputs in DIR: results.npz, init.npz (front ends only), scene.glb,
animation.glb, bvh/person_<ID>.bvh, overlay.mp4, overlay_frames/*.png, trajectory.png, loss_curve.png,
summary.json, and with --rerun recording.rrd. ``--synthetic`` runs the older
synthetic-world demo (no video; writes ground_truth.npz as well).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError

EXAMPLE_CLIP = Path(__file__).parent / "data" / "example" / "walk.mp4"


class DemoError(JoshError, RuntimeError):
    """A one-line, actionable reason the demo cannot go on."""


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


#: the run flags the demo and the batch CLI share (:func:`add_run_args`): dest -> how :func:`run_argv`
#: writes it back ("value": ``--flag VALUE`` unless None, "list": ``--flag V`` per item, "switch")
RUN_ARGS = {
    "frontends": ("--frontends", "value"),
    "method": ("--method", "value"),
    "models": ("--models", "value"),
    "body_model": ("--body-model", "value"),
    "device": ("--device", "value"),
    "compile_cache": ("--compile-cache", "value"),
    "config": ("--config", "value"),
    "overrides": ("--set", "list"),
    "objective": ("--objective", "value"),
    "no_overlay": ("--no-overlay", "switch"),
    "baseline": ("--baseline", "switch"),
    "fresh": ("--fresh", "switch"),
}

METHODS = ("josh", "josh3r", "josh3r+joint")
JOSH3R_METHODS = ("josh3r", "josh3r+joint")


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The flags of one video's run (front ends, method, models, body model, device, compile cache,
    config, --set, objective, --no-overlay, --baseline, --fresh): the demo's, and the batch CLI's for each video."""
    ap.add_argument(
        "--frontends",
        choices=("default", "official"),
        default="default",
        help="embedded front ends (default) or the official ONNX models (see docs/frontends.md)",
    )
    ap.add_argument(
        "--method",
        choices=METHODS,
        default="josh",
        help="josh: the joint optimization (default); josh3r: the feed-forward JOSH3R model, no optimization; "
        "josh3r+joint: the joint optimization started at JOSH3R's cameras and scale (both need josh3r.onnx in "
        "--models, docs/josh3r.md)",
    )
    ap.add_argument("--models", default=None, help="folder with the ONNX models (default: models_onnx/)")
    ap.add_argument(
        "--body-model",
        "--smpl",
        dest="body_model",
        default="open",
        help="'open' (embedded josh-open-body) or a path to SMPL_NEUTRAL.pkl / a SMPL folder",
    )
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="for JAX and onnxruntime")
    ap.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="persistent compilation cache folder (shared by batch workers), or 'off' "
        "(default: $JOSH_JAX_CACHE_DIR, else ~/.cache/josh_jax/jax)",
    )
    ap.add_argument("--config", type=Path, default=None, help="JSON/TOML file with any setting (see josh_jax.config)")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set solve.iters_stage1=300 or --set prior_loss_weight=50",
    )
    ap.add_argument(
        "--objective",
        choices=("josh", "josh+"),
        default=None,
        help="josh: the reference objective (default); josh+: planted feet, less jitter (docs/objective.md)",
    )
    ap.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4 and its stills (a few seconds)")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="also solve the front-ends-only baseline of every window: init.npz and trajectory.png's second "
        "panel (a second solve, about as long as the joint one)",
    )
    ap.add_argument("--fresh", action="store_true", help="ignore the finished windows of an interrupted run")


def run_argv(args) -> list[str]:
    """The :func:`add_run_args` flags of parsed ``args`` as a command line (defaults left out)."""
    argv: list[str] = []
    for dest, (flag, kind) in RUN_ARGS.items():
        v = getattr(args, dest)
        if kind == "switch":
            argv += [flag] if v else []
        elif kind == "list":
            for x in v:
                argv += [flag, str(x)]
        elif v is not None:
            argv += [flag, str(v)]
    return argv


def _parser() -> argparse.ArgumentParser:
    from josh_jax._cli.checks import OneLineParser

    from .frontends.__main__ import add_frontend_args

    ap = OneLineParser(prog="python -m josh_jax.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("video", nargs="?", type=Path, help="a video file (default: the bundled example clip)")
    ap.add_argument("--out", type=Path, default=Path("josh_demo_out"), help="output folder (default: josh_demo_out)")
    add_run_args(ap)
    ap.add_argument("--rerun", action="store_true", help="also write recording.rrd (needs: pip install -e '.[viz]')")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ap.add_argument("--synthetic", action="store_true", help="run the synthetic-world demo instead (no video)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (with --synthetic)")
    add_frontend_args(ap, models=False)
    return ap


def _fingerprint(video: Path, args, cfg) -> dict:
    st = video.stat()
    return {
        "video": str(video.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "start": args.start,
        "frames": args.frames,
        "body_model": str(args.body_model),
        "frontends": args.frontends,
        "config": cfg.to_dict(),
        **({"method": args.method} if getattr(args, "method", "josh") != "josh" else {}),
        **({"josh3r_model": _model_stamp(args, cfg)} if getattr(args, "method", "josh") in JOSH3R_METHODS else {}),
    }


def _model_stamp(args, cfg) -> dict:
    """josh3r.onnx's path, size and mtime: a re-exported model (e.g. real weights after random ones)
    must not resume on the work folder's pair outputs of the old one."""
    from .frontends.official.josh3r import josh3r_path

    path = josh3r_path(args.models or cfg.frontends.models_dir)
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class WorkFolderError(DemoError):
    """``OUT.work`` exists and this run may not use or remove it (nothing is touched)."""


def _read_fingerprint(fp_path: Path) -> str | None:
    """fingerprint.json's text when it is a josh_jax fingerprint (a JSON object naming a video), else None."""
    from .jsonfile import JsonFileError, read_json

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


class _Compiled:
    """Problem sizes (and solver settings) this process has compiled the solver for."""

    seen: set = set()


def _compile_notice(problem, scfg) -> None:
    """Say so before the solver compiles for a new size (the first solve of a size waits ~30 s on CPU)."""
    from .problem import problem_sizes

    key = (tuple(problem_sizes(problem)), scfg)
    if key not in _Compiled.seen:
        _Compiled.seen.add(key)
        _log("compiling the solver for this size (once per size) ...")


def _check_window(w, problem, cfg, where: str) -> None:
    """Refuse a window that would solve to nothing meaningful or allocate without bound; warn when
    its metric scale rests on nothing."""
    from .results import check_solvable

    for line in check_solvable(problem, w, cfg.problem.conf_thres, where):
        _log(f"warning: {line}")


def window_problem(w, model, cfg, label: str = ""):
    """The padded problem of one window, refused when it would solve to nothing meaningful."""
    from .objective import problem_config
    from .problem import build_problem

    problem = build_problem(w, model, problem_config(cfg.problem, cfg.objective))
    _check_window(w, problem, cfg, label or "window")
    return problem


def save_window(
    w, model, problem, res, base_problem, base_params, out_prefix: Path, seconds_joint: float, seconds_base, objective
) -> dict:
    """Write one solved window (``_init.npz``, ``_loss.npz``, ``.json``, then ``_results.npz``, whose
    presence marks it finished); returns its info. ``res``: the joint :class:`josh_jax.solve.SolveResult`
    of this window (not stacked); ``base_params``: the front-ends-only baseline's solved parameters
    (``seconds_base`` its seconds), or, with ``seconds_base`` None, the problem's starting point (no
    solve: what the front ends gave, for summary.json's alignment; the window info's ``init`` says
    which); ``objective`` (:class:`josh_jax.objective.ObjectiveConfig`) adds its post-solve stages
    (``josh+``: the per-frame refinement) to the joint results."""
    from .objective import finish_results
    from .problem import entry_counts, problem_sizes
    from .results import build_results, save_npz

    for name, it in res.nan_stages():
        _log(
            f"warning: non-finite loss at {name} iteration {it} of frames "
            f"{w.frame_index[0]}-{w.frame_index[-1]}; the last finite state was kept"
        )
    build_results(base_params, base_problem, w, model).save(out_prefix.with_name(out_prefix.name + "_init.npz"))
    hist = {f"s1_{k}": np.asarray(v) for k, v in res.stage1.history._asdict().items()}
    hist.update({f"s2_{k}": np.asarray(v) for k, v in res.stage2.history._asdict().items()})
    save_npz(out_prefix.with_name(out_prefix.name + "_loss.npz"), hist)
    info = {
        "frames": [int(w.frame_index[0]), int(w.frame_index[-1])],
        "keyframes": int(w.num_keyframes),
        "tracks": int(w.num_tracks),
        "sizes": problem_sizes(problem)._asdict(),
        **entry_counts(problem),
        "final_loss": float(np.asarray(res.stage2.history.total)[-1]),
        "seconds_joint": seconds_joint,
        "init": "start" if seconds_base is None else "baseline",
        "seconds_front_ends_only": seconds_base or 0.0,
    }
    out_prefix.with_name(out_prefix.name + ".json").write_text(json.dumps(info, indent=1))
    # results last: their presence marks the window as finished
    final = finish_results(build_results(res.params, problem, w, model), w, model, objective)  # josh+: refine
    final.save(out_prefix.with_name(out_prefix.name + "_results.npz"))
    return info


def _solve_window(w, model, cfg, out_prefix: Path, label: str = "", start=None) -> dict:
    """The joint solve of one window (and with ``cfg.output.baseline`` the front-ends-only baseline);
    results saved under ``out_prefix``. ``label`` (e.g. "window 1/2") names the progress bars;
    ``start`` (problem, window) -> problem changes the starting point (``--method josh3r+joint``:
    :func:`warm_problem`)."""
    import jax

    from .objective import loss_weights
    from .solve import front_ends_only, solve

    t0 = time.perf_counter()
    problem = window_problem(w, model, cfg, label)
    if start is not None:
        problem = start(problem, w)
    # one compiled program for both solves: the progress rate and labels are data. Adam's bars are
    # driven from the host, Gauss-Newton (24 iterations at most, seconds) runs without: both programs
    # go to the persistent cache (JAX keeps none with a host callback)
    scfg = dataclasses.replace(cfg.solve, progress_every=25 if cfg.solve.method == "adam" else 0)
    _compile_notice(problem, scfg)
    res = jax.block_until_ready(
        solve(problem, loss_weights(cfg.weights, cfg.objective), scfg, label=f"{label} joint".strip())
    )
    t1 = time.perf_counter()
    if not cfg.output.baseline:
        return save_window(w, model, problem, res, problem, res.init, out_prefix, t1 - t0, None, cfg.objective)
    base_problem, base_w = front_ends_only(problem, cfg.weights)
    base = jax.block_until_ready(solve(base_problem, base_w, scfg, label=f"{label} front ends only".strip()))
    t2 = time.perf_counter()
    return save_window(w, model, problem, res, base_problem, base.params, out_prefix, t1 - t0, t2 - t1, cfg.objective)


def solve_windows_vmapped(items: list) -> list[dict]:
    """Stage 3 for several windows at once (of one or several videos): one vmapped
    :func:`josh_jax.solve.solve_batch` for the joint solves and, with ``output.baseline``, one for
    the baselines.

    ``items``: (prepared, windows, i) triples whose problems share a size bucket, a body model,
    loss weights and solver settings (:func:`window_bucket` equal); returns their infos in order.
    Finished windows are not re-solved. Agrees with :func:`solve_window` to float tolerance."""
    import jax

    from .objective import loss_weights
    from .solve import front_ends_only, solve_batch, stack_problems

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
    cfg = p0.cfg
    for _, p, _, _ in todo[1:]:
        if (p.cfg.solve, p.cfg.weights, p.cfg.objective, p.cfg.output.baseline, p.model.name) != (
            cfg.solve,
            cfg.weights,
            cfg.objective,
            cfg.output.baseline,
            p0.model.name,
        ):
            raise ValueError(
                "solve_windows_vmapped: the windows need the same solver settings, weights, objective, baseline "
                "and body model"
            )
    t0 = time.perf_counter()
    problems = [
        window_problem(windows[i], p.model, p.cfg, f"window {i + 1}/{len(windows)}") for _, p, windows, i in todo
    ]
    problems = [
        warm_problem(p, pr, windows[i]) if _method(p) == "josh3r+joint" else pr
        for pr, (_, p, windows, i) in zip(problems, todo)
    ]
    scfg = dataclasses.replace(cfg.solve, progress_every=0)
    _log(f"solving {len(todo)} window(s) together (vmap) ...")
    res = jax.block_until_ready(solve_batch(stack_problems(problems), loss_weights(cfg.weights, cfg.objective), scfg))
    t1 = time.perf_counter()
    n = len(todo)
    pick = lambda tree, k: jax.tree_util.tree_map(lambda x: x[k], tree)
    if cfg.output.baseline:
        bases = [front_ends_only(pr, cfg.weights) for pr in problems]
        base = jax.block_until_ready(solve_batch(stack_problems([b for b, _ in bases]), bases[0][1], scfg))
        base_of = lambda k: (bases[k][0], pick(base.params, k))
    else:
        base_of = lambda k: (problems[k], pick(res.init, k))
    t2 = time.perf_counter()
    for k, (j, p, windows, i) in enumerate(todo):
        out[j] = save_window(
            windows[i],
            p.model,
            problems[k],
            pick(res, k),
            *base_of(k),
            window_prefix(p, i),
            (t1 - t0) / n,
            (t2 - t1) / n if cfg.output.baseline else None,
            cfg.objective,
        )
    return out


def window_bucket(p: Prepared, windows: list, i: int) -> str:
    """A key equal for windows that :func:`solve_windows_vmapped` can solve together: the problem's
    bucket sizes, the solver settings, the weights and the body model."""
    from .objective import problem_config
    from .problem import build_problem, problem_sizes

    sizes = problem_sizes(build_problem(windows[i], p.model, problem_config(p.cfg.problem, p.cfg.objective)))
    return json.dumps(
        [
            sizes._asdict(),
            dataclasses.asdict(p.cfg.solve),
            list(map(float, p.cfg.weights)),
            dataclasses.asdict(p.cfg.objective),
            p.cfg.output.baseline,
            p.model.name,
            _method(p),  # a warm start changes the problem's structure
        ],
        sort_keys=True,
        default=str,
    )


def plot_losses(solved: Path, n: int, path: Path) -> None:
    """loss_curve.png of the solved windows (see :func:`josh_jax.export.plots.plot_losses`)."""
    from josh_jax.export.plots import plot_losses as _plot

    from .npz import read_npz

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


def _check_inputs_and_output(args, video: Path):
    """The input first (a missing video is named before an occupied output folder), then the output:
    not an input, not a file, empty unless --overwrite, writable. Returns the probed video."""
    from josh_jax._cli.atomic import check_output

    from .frontends import probe

    info = probe(video, args.start, args.frames)
    model_path = None if str(args.body_model).lower() in ("open", "josh-open-body", "default") else args.body_model
    work = args.out.with_name(args.out.name + ".work")
    check_output(args.out, inputs=[video, model_path, args.config, args.models], overwrite=args.overwrite, also=[work])
    return info


def _example_check(res, gt_path: Path) -> dict:
    """Camera path length and per-frame camera error (after aligning the first frames) vs the clip's truth."""
    from .eval.metrics import path_length

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
    """What every stage of one video's run needs (see :func:`prepare`): the parsed demo arguments, the
    checked config, the probed video, the body model and the ``OUT.work`` folder."""

    args: argparse.Namespace
    cfg: object  # josh_jax.config.DemoConfig
    info: object  # josh_jax.frontends.VideoInfo
    model: object  # josh_jax.body.BodyModel
    video: Path
    work: Path

    @property
    def bundle_dir(self) -> Path:
        return self.work / "bundle"

    @property
    def solved(self) -> Path:
        return self.work / "solved"


def prepare(args, attach: bool = False) -> Prepared:
    """Stage 1 (decode/check): config, input and output checks, body model, and the work folder.

    ``attach=False`` (the demo, or the first stage of a batch video) creates ``OUT.work`` or resumes
    a matching one; ``attach=True`` (later stages of a batch video, possibly in another process)
    only opens the work folder that an earlier ``prepare`` made, which must have the same fingerprint.
    ``args``: the demo's parsed arguments (:func:`parse_args`)."""
    from . import body as jbody
    from . import config as jconfig
    from .frontends.official import require_models

    video = args.video or EXAMPLE_CLIP
    cfg = jconfig.load(args.config, args.overrides)
    models_dir = args.models or cfg.frontends.models_dir  # --models wins over the config's, as below
    if args.frontends == "official":
        require_models(models_dir)  # a cheap check before the video is decoded
    if getattr(args, "method", "josh") in JOSH3R_METHODS:
        from .frontends.official.josh3r import josh3r_path

        josh3r_path(models_dir)  # missing josh3r.onnx: one line with the export command, before decoding
    info = _check_inputs_and_output(args, video)
    lock = getattr(args, "run_lock", None)  # main's RunLock: taken once the output is known to be usable
    if lock is not None and not attach and lock.fd is None:
        lock.acquire()
    flags = {"device": args.device}  # front-end flags given on the command line win over the file/--set
    if args.static_camera:
        flags["static_camera"] = True
    if args.camera != "auto":
        flags["camera"] = args.camera
    if args.focal is not None:  # given in original pixels, the front ends work at long side work_side
        from .frontends.__main__ import working_focal

        flags["focal"] = working_focal(args.focal, info, cfg.frontends.work_side)
    if args.max_people != jconfig.FrontEndConfig.max_people:
        flags["max_people"] = args.max_people
    if args.models:
        flags["models_dir"] = str(args.models)
    cfg = jconfig.check(dataclasses.replace(cfg, frontends=dataclasses.replace(cfg.frontends, **flags)))
    if args.objective is not None:
        cfg = jconfig.apply(cfg, {"objective.name": args.objective})
    if args.no_overlay:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, overlay=False))
    if getattr(args, "baseline", False):
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, baseline=True))
    if args.rerun:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, rerun=True))
        try:
            import rerun  # noqa: F401
        except ImportError:
            raise DemoError("--rerun needs rerun-sdk: pip install -e '.[viz]'") from None
    model = jbody.load(args.body_model)
    if not attach:
        _log(
            f"{info.path.name}: {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.1f} fps; "
            f"body model {model.name}"
        )
    from josh_jax.frontends.intrinsics import (
        apply_to_config,
    )  # --intrinsics: known K into the front ends, focal held in the solve

    cfg = apply_to_config(
        cfg, args.intrinsics, info, args.frontends, args.free_intrinsics, _log if not attach else (lambda m: None)
    )
    fp = _fingerprint(info.path, args, cfg)
    if attach:
        work = args.out.with_name(args.out.name + ".work")
        fp_path = work / "fingerprint.json"
        if _read_fingerprint(fp_path) != json.dumps(fp, sort_keys=True, default=str):
            raise DemoError(f"{work} is missing or belongs to another run; run the same command again")
    else:
        work = _prepare_work(args.out, fp, args.fresh)
    return Prepared(args=args, cfg=cfg, info=info, model=model, video=video, work=work)


def _resumed_bundle(bundle_dir: Path, num_vertices: int) -> tuple | None:
    """A resumed work folder's front-end outputs as (meta, windows), read once; when they do not read
    back whole (a truncated window, a damaged bundle.json or tracks.npz) they are removed, said, and
    None is returned so that they are computed again: never trusted, never a crash."""
    from .bundle import load as load_bundle
    from .frontends import load_tracks

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
    from .bundle import load as load_bundle
    from .bundle import save as save_bundle
    from .frontends import run_frontends, save_tracks
    from .frontends.official import run_official

    args, cfg, bundle_dir = p.args, p.cfg, p.bundle_dir
    seconds = {} if seconds is None else seconds
    resumed = _resumed_bundle(bundle_dir, p.model.num_vertices)  # (meta, windows), or None
    if resumed is None:
        run = run_frontends if args.frontends == "default" else run_official
        t = time.perf_counter()
        fo = run(p.info, p.model, cfg.frontends, log=_log)
        _log(
            f"front ends: done in {time.perf_counter() - t:.1f} s ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in fo.seconds.items())
            + ")"
        )
        save_bundle(
            bundle_dir,
            fo.windows,
            {
                "body_model": str(args.body_model),
                "source": f"josh_jax.frontends ({args.frontends})",
                **fo.meta,
                "seconds": fo.seconds,
            },
            extras={"tracks.npz": save_tracks(fo.tracks)},
        )
        seconds.update({f"frontends_{k}": v for k, v in fo.seconds.items()})
    meta, windows = resumed or load_bundle(bundle_dir, p.model.num_vertices)
    if resumed and isinstance(meta.get("seconds"), dict):  # the times recorded when they ran
        seconds.update({f"frontends_{k}": float(v) for k, v in meta["seconds"].items() if isinstance(v, (int, float))})
    if _method(p) in JOSH3R_METHODS and not (p.work / JOSH3R_MOTION).is_file():
        with _Stage("JOSH3R on the first person track's frame pairs", seconds, "josh3r"):
            _run_josh3r_pairs(p, windows)
    if meta.get("static_camera") or meta.get("camera_mode") in ("static", "rotation"):
        # the cameras are known (identical, or rotations and focals fitted to the background) and the
        # ground plane came from the metric bodies: hold the scene (poses, depth sizes, focal) and fit
        # the people to it; Adam would otherwise random-walk the cameras on the near-zero gradients
        # of exact identity matches
        cfg = dataclasses.replace(
            cfg, solve=dataclasses.replace(cfg.solve, optimize_cameras=False, optimize_focal=False)
        )
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
    from .jsonfile import read_json
    from .npz import NpzError, read_npz
    from .results import Results, ResultsError

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
    start = (lambda pr, win: warm_problem(p, pr, win)) if _method(p) == "josh3r+joint" else None
    info = _solve_window(w, p.model, p.cfg, prefix, label=f"window {i + 1}/{n}", start=start)
    _log(f"window {i + 1}/{n}: done in {time.perf_counter() - tw:.1f} s")
    return info


def finish(p: Prepared, meta: dict, windows: list, seconds: dict, t_all: float | None = None) -> dict:
    """Stages 4-5: join the solved windows and export every output into ``OUT`` (a temp folder moved
    into place at the end), then remove the work folder. Returns the summary (also summary.json).
    ``seconds``: the earlier stages' seconds (``total`` is set here: since ``t_all`` when given, else
    the sum of the stages)."""
    from .join import join_windows
    from .results import Results

    if _method(p) == "josh3r":
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
    meta: dict,
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

    from .frontends import load_tracks

    args, cfg, model, info, out = p.args, p.cfg, p.model, p.info, p.args.out
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
            "method": getattr(args, "method", "josh"),
            "people": len(tracks),
            "windows": extra.get("windows"),
            "body_model": model.name,
            "front_ends": args.frontends,
            "static_camera": bool(meta.get("static_camera", False)),
            "camera": {
                "mode": meta.get("camera_mode")
                or ("static" if meta.get("static_camera") else "sfm" if args.frontends == "default" else "point maps"),
                "evidence": meta.get("camera_evidence"),
                "keyframe_focals": meta.get("keyframe_focals"),
            },
            "coverage": meta.get("coverage")
            or {
                "first": int(res["frame_index"][0]),
                "last": int(res["frame_index"][-1]),
                "frames": int(len(res["frame_index"])),
                "reason": "",
            },
            "registered_keyframes": meta.get("registered"),
            "keyframes": meta.get("keyframes"),
            "focal_working_px": meta.get("focal"),
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


JOSH3R_MOTION = "josh3r_motion.npz"  # in OUT.work: JOSH3R's per-pair outputs (a resumed run skips the pairs)


def _method(p: Prepared) -> str:
    return getattr(p.args, "method", "josh")


def _run_josh3r_pairs(p: Prepared, windows: list) -> None:
    """JOSH3R on the first person track's frame pairs (the human front end's fits: VIMO on the official
    path, the embedded body fit otherwise), saved as ``OUT.work/josh3r_motion.npz``."""
    from . import josh3r
    from .frontends import load_tracks
    from .frontends.official.josh3r import Josh3rSession

    tracks = load_tracks(p.bundle_dir / "tracks.npz")
    if not tracks:
        raise DemoError("JOSH3R needs a person track, and the front ends found none in this clip")
    lead = sorted(tracks)[0]
    session = Josh3rSession(p.cfg.frontends.models_dir or p.args.models, p.args.device)
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
    from . import josh3r

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
    from . import josh3r
    from .frontends import load_tracks

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


def run(args) -> dict:
    """The whole demo in this process: :func:`prepare`, :func:`front_ends`, :func:`solve_window` for
    each window, :func:`finish` (``python -m josh_jax.batch`` runs the same stages as Ray tasks)."""
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    p = prepare(args)
    seconds["decode_check"] = time.perf_counter() - t
    p, meta, windows = front_ends(p, seconds)
    t = time.perf_counter()
    for i in range(len(windows) if _method(p) != "josh3r" else 0):  # josh3r: no optimization
        solve_window(p, windows, i)
    seconds["solve"] = time.perf_counter() - t
    return finish(p, meta, windows, seconds, t_all)


def _alignment(res, init, tracks: dict, meta: dict, info) -> dict:
    """summary.json's ``alignment``: per person, the 2D error of the joint result and of the front ends
    alone against the track's landmarks (% of the box height; :mod:`josh_jax.eval.alignment`)."""
    from .eval.alignment import alignment

    work = meta.get("work_size")
    if not work or not any(t.landmarks is not None for t in tracks.values()):
        return {}  # the official front ends keep no landmarks
    return alignment(res, tracks, max(info.width, info.height) / max(work), init)


def _warnings(summary: dict) -> list[str]:
    """summary.json's ``warnings``: what the user should know about this result, in plain words (the
    camera model the front ends fell back to; people the joint result draws off the video)."""
    from .eval.alignment import WORSE_BY, worse_people

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


def _print_alignment(s: dict) -> None:
    table = s.get("alignment") or {}
    if table:

        def fmt(e):
            return "-" if not e else f"{e['median']:.1f} %"

        _log(
            "bodies on the people (median 2D joint error, % of box height; front ends alone -> joint): "
            + ", ".join(f"person {pid} {fmt(e['init'])} -> {fmt(e['joint'])}" for pid, e in table.items())
        )
    for line in s.get("warnings") or []:
        _log(f"warning: {line} (README: 'What to expect on real footage')")


def _print_summary(s: dict, out: Path) -> None:
    sec = s["seconds"]
    fe = sum(v for k, v in sec.items() if k.startswith("frontends_"))
    cov = s.get("coverage") or {}
    cam = (s.get("camera") or {}).get("mode", "?")
    covered = (
        f"frames {cov['first']}-{cov['last']} of {s['frames']} ({cov['reason']})"
        if cov.get("reason")
        else f"{s['frames']} frames"
    )
    _log(f"camera: {cam} ({((s.get('camera') or {}).get('evidence') or {}).get('reason', '')})")
    _log(
        f"done: {covered}, {s['people']} person track(s), "
        + (f"{s['windows']} window(s)" if s.get("windows") is not None else "JOSH3R")
        + f" in {sec['total']:.0f} s "
        f"(front ends {fe:.0f} s, "
        + (f"JOSH3R {sec['josh3r']:.0f} s, " if "josh3r" in sec else "")
        + (f"solve {sec['solve']:.0f} s" if s.get("windows") is not None else "no optimization")
        + ", join and export "
        f"{sec.get('join', 0) + sec.get('export', 0):.0f} s, overlay {sec.get('overlay', 0):.0f} s)"
    )
    _print_alignment(s)
    if "example_clip_check" in s:
        c = s["example_clip_check"]
        _log(
            f"example clip vs its ground truth: camera path {c['camera_path_m']:.2f} m "
            f"(true {c['true_camera_path_m']:.2f} m), mean camera error {c['camera_error_mean_m']:.2f} m"
        )
    _log(f"outputs in {out}/: " + ", ".join(s["outputs"] + ["summary.json"]))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from .solve.compile_cache import enable as enable_compile_cache

    enable_compile_cache(args.compile_cache)
    if args.synthetic:
        from josh_jax.synthetic.demo import main as synthetic_main

        return synthetic_main(
            ["--out", str(args.out), "--seed", str(args.seed), "--body-model", str(args.body_model)]
            + (["--overwrite"] if args.overwrite else [])
        )
    from josh_jax._cli.checks import error_line
    from josh_jax._cli.interrupt import exit_on_interrupt
    from josh_jax._cli.lock import RunLock

    work = args.out.with_name(args.out.name + ".work")
    lock = RunLock(args.out)  # one run per --out; only the run holding it may clean OUT.work up (_prepare_work)
    try:
        if args.device == "gpu":
            import jax

            if not any(d.platform == "gpu" for d in jax.devices()):
                raise DemoError("--device gpu: JAX sees no GPU; install the CUDA extra (pip install -e '.[gpu]')")
        with exit_on_interrupt(
            lambda: _interrupted_message(args.out, work) if lock.acquired else "interrupted; nothing was touched",
            lambda: _release_on_interrupt(lock, work),
        ):
            args.run_lock = lock  # prepare() takes it once the inputs and the output are checked
            try:
                summary = run(args)
            finally:
                lock.release()
    except (JoshError, OSError) as exc:
        kept = False if isinstance(exc, WorkFolderError) or not lock.acquired else _drop_unfinished(work, True)
        print(
            error_line(exc, args.out)
            + (f"; the solved windows are kept in {work} (the same command resumes)" if kept else ""),
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # raised by Python code where the handler is not installed (not the main thread)
        if lock.acquired:
            _drop_unfinished(work, False)
        print("\n" + _interrupted_message(args.out, work), file=sys.stderr)
        return 130
    _print_summary(summary, args.out)
    return 0


def _release_on_interrupt(lock, work: Path) -> None:
    """Ctrl-C / SIGTERM: the work folder cleaned up and the run lock's file removed, only by the run
    that holds the lock (a second run stopped by the lock touches nothing)."""
    if lock.fd is not None:
        _drop_unfinished(work, False)
        lock.release()


def _finished_work(work: Path, solved_only: bool) -> bool:
    if any((work / "solved").glob("window_*_results.npz")):
        return True
    return not solved_only and (work / "bundle" / "bundle.json").is_file()


def _drop_unfinished(work: Path, solved_only: bool) -> bool:
    """Remove ``work`` unless it holds finished work worth resuming (solved windows; after Ctrl-C also
    finished front ends). Returns whether it was kept. Only a folder with our fingerprint is touched."""
    if not (work / "fingerprint.json").is_file():
        return False
    if _finished_work(work, solved_only):
        return True
    shutil.rmtree(work, ignore_errors=True)
    return False


def _interrupted_message(out: Path, work: Path) -> str:
    if work.exists() and _finished_work(work, False):
        n = len(list((work / "solved").glob("window_*_results.npz")))
        return (
            f"interrupted: the finished work ({n} solved window(s)"
            f"{', the front ends' if (work / 'bundle' / 'bundle.json').is_file() else ''}) is kept in {work}; "
            f"run the same command again to resume (or pass --fresh to start over). {out} was not touched."
        )
    return f"interrupted: nothing was finished, nothing kept. {out} was not touched."


if __name__ == "__main__":
    sys.exit(main())
