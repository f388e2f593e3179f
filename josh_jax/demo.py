"""``python -m josh_jax.demo [VIDEO] [--out DIR]``: from a video to a 4D reconstruction you can look at.

With no VIDEO it runs the bundled example clip (josh_jax/data/example/walk.mp4,
CC0). Stages: decode -> front ends (embedded defaults, or the official ONNX
models) -> one problem per solve window -> joint optimization (and the
front-ends-only baseline) -> windows joined by similarity transforms ->
outputs. Everything of one run is written to ``DIR.work/`` first (finished
windows are kept there, so an interrupted run resumes where it stopped) and
moved to DIR only when complete.

Outputs in DIR: results.npz, init.npz (front ends only), scene.glb,
overlay.mp4, overlay_frames/*.png, trajectory.png, loss_curve.png,
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

EXAMPLE_CLIP = Path(__file__).parent / "data" / "example" / "walk.mp4"


class DemoError(RuntimeError):
    """A one-line, actionable reason the demo cannot go on."""


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    from .frontends.__main__ import add_frontend_args

    ap = argparse.ArgumentParser(prog="python -m josh_jax.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("video", nargs="?", type=Path, help="a video file (default: the bundled example clip)")
    ap.add_argument("--out", type=Path, default=Path("josh_demo_out"), help="output folder (default: josh_demo_out)")
    ap.add_argument("--frontends", choices=("default", "official"), default="default",
                    help="embedded front ends (default) or the official ONNX models (see docs/frontends.md)")
    ap.add_argument("--body-model", "--smpl", dest="body_model", default="open",
                    help="'open' (embedded josh-open-body) or a path to SMPL_NEUTRAL.pkl / a SMPL folder")
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="for JAX and onnxruntime")
    ap.add_argument("--config", type=Path, default=None, help="JSON/TOML file with any setting (see josh_jax.config)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one setting, e.g. --set solve.iters_stage1=300 or --set prior_loss_weight=50")
    ap.add_argument("--rerun", action="store_true", help="also write recording.rrd (needs: pip install -e '.[viz]')")
    ap.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4 (the slowest output on CPU)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ap.add_argument("--fresh", action="store_true", help="ignore the finished windows of an interrupted run")
    ap.add_argument("--synthetic", action="store_true", help="run the synthetic-world demo instead (no video)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (with --synthetic)")
    add_frontend_args(ap)
    return ap


def _fingerprint(video: Path, args, cfg) -> dict:
    st = video.stat()
    return {"video": str(video.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "start": args.start,
            "frames": args.frames, "body_model": str(args.body_model), "frontends": args.frontends,
            "config": cfg.to_dict()}


def _prepare_work(out: Path, fp: dict, fresh: bool) -> Path:
    work = out.with_name(out.name + ".work")
    fp_path = work / "fingerprint.json"
    fp_text = json.dumps(fp, sort_keys=True, default=str)
    if work.exists():
        same = fp_path.is_file() and fp_path.read_text() == fp_text
        if same and not fresh:
            done = sorted((work / "solved").glob("window_*_results.npz")) if (work / "solved").exists() else []
            _log(f"resuming the interrupted run in {work} ({len(done)} window(s) already solved)")
            return work
        shutil.rmtree(work)
    (work / "solved").mkdir(parents=True)
    fp_path.write_text(fp_text)
    return work


def _solve_window(w, model, cfg, out_prefix: Path) -> dict:
    """Joint and front-ends-only solves of one window; results saved under ``out_prefix``."""
    import jax

    from .problem import build_problem, entry_counts, problem_sizes
    from .results import build_results, save_npz
    from .solve import front_ends_only, solve

    t0 = time.perf_counter()
    problem = build_problem(w, model, cfg.problem)
    res = jax.block_until_ready(solve(problem, cfg.weights, dataclasses.replace(cfg.solve, progress_every=25)))
    t1 = time.perf_counter()
    base_problem, base_w = front_ends_only(problem, cfg.weights)
    base = jax.block_until_ready(solve(base_problem, base_w, cfg.solve))
    t2 = time.perf_counter()
    for name, it in res.nan_stages():
        _log(f"warning: non-finite loss at {name} iteration {it} of frames "
             f"{w.frame_index[0]}-{w.frame_index[-1]}; the last finite state was kept")
    save_npz(out_prefix.with_name(out_prefix.name + "_init.npz"), build_results(base.params, base_problem, w, model))
    hist = {f"s1_{k}": np.asarray(v) for k, v in res.stage1.history._asdict().items()}
    hist.update({f"s2_{k}": np.asarray(v) for k, v in res.stage2.history._asdict().items()})
    save_npz(out_prefix.with_name(out_prefix.name + "_loss.npz"), hist)
    info = {"frames": [int(w.frame_index[0]), int(w.frame_index[-1])], "keyframes": int(w.num_keyframes),
            "tracks": int(w.num_tracks), "sizes": problem_sizes(problem), **entry_counts(problem),
            "final_loss": float(np.asarray(res.stage2.history.total)[-1]),
            "seconds_joint": t1 - t0, "seconds_front_ends_only": t2 - t1}
    out_prefix.with_name(out_prefix.name + ".json").write_text(json.dumps(info, indent=1))
    # results last: their presence marks the window as finished
    save_npz(out_prefix.with_name(out_prefix.name + "_results.npz"), build_results(res.params, problem, w, model))
    return info


def plot_losses(solved: Path, n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for i in range(n):
        with np.load(solved / f"window_{i:03d}_loss.npz") as z:
            for ax, s in zip(axes, ("s1", "s2")):
                ax.semilogy(z[f"{s}_total"], label=f"window {i}")
    axes[0].set_title("stage 1 (3D matching): total loss")
    axes[1].set_title("stage 2 (2D reprojection): total loss")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _example_check(res: dict, gt_path: Path) -> dict:
    """Camera path length and per-frame camera error (after aligning the first frames) vs the clip's truth."""
    with np.load(gt_path) as z:
        T = z["cam_to_world"].astype(np.float64)
    Tg = np.linalg.inv(T[0]) @ T
    f = res["frame_index"]
    c, cg = res["cam_to_world"][:, :3, 3].astype(np.float64), Tg[f, :3, 3]
    length = lambda x: float(np.linalg.norm(np.diff(x, axis=0), axis=1).sum())
    return {"camera_path_m": length(c), "true_camera_path_m": length(cg),
            "camera_error_max_m": float(np.linalg.norm(c - cg, axis=1).max()),
            "camera_error_mean_m": float(np.linalg.norm(c - cg, axis=1).mean())}


def run(args) -> dict:
    from . import body as jbody
    from . import config as jconfig
    from .bundle import load as load_bundle, save as save_bundle
    from .frontends import load_tracks, probe, run_frontends, save_tracks
    from .frontends.official import require_models, run_official
    from .atomic import atomic_folder
    from .join import join_windows
    from .results import load_results, save_npz

    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    video = args.video or EXAMPLE_CLIP
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise DemoError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    cfg = jconfig.load(args.config, args.overrides)
    flags = {"device": args.device}  # front-end flags given on the command line win over the file/--set
    if args.static_camera:
        flags["static_camera"] = True
    if args.camera != "auto":
        flags["camera"] = args.camera
    if args.focal is not None:
        flags["focal"] = args.focal
    if args.max_people != jconfig.FrontEndConfig.max_people:
        flags["max_people"] = args.max_people
    if args.models:
        flags["models_dir"] = str(args.models)
    cfg = dataclasses.replace(cfg, frontends=dataclasses.replace(cfg.frontends, **flags))
    if args.no_overlay:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, overlay=False))
    if args.rerun:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, rerun=True))
        try:
            import rerun  # noqa: F401
        except ImportError:
            raise DemoError("--rerun needs rerun-sdk: pip install -e '.[viz]'") from None
    if args.frontends == "official":
        require_models(args.models)
    model = jbody.load(args.body_model)
    t = time.perf_counter()
    info = probe(video, args.start, args.frames)
    seconds["decode_check"] = time.perf_counter() - t
    _log(f"{info.path.name}: {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.1f} fps; "
         f"body model {model.name}")

    work = _prepare_work(out, _fingerprint(info.path, args, cfg), args.fresh)
    bundle_dir, solved = work / "bundle", work / "solved"

    # ---- front ends (kept in the work folder: a resumed run skips them)
    if not (bundle_dir / "bundle.json").is_file():
        run = run_frontends if args.frontends == "default" else run_official
        fo = run(info, model, cfg.frontends, log=_log)
        save_bundle(bundle_dir, fo.windows, {"body_model": str(args.body_model),
                                             "source": f"josh_jax.frontends ({args.frontends})",
                                             **fo.meta, "seconds": fo.seconds}, extras={"tracks.npz": save_tracks(fo.tracks)})
        seconds.update({f"frontends_{k}": v for k, v in fo.seconds.items()})
    else:
        meta = json.loads((bundle_dir / "bundle.json").read_text())
        seconds.update({f"frontends_{k}": v for k, v in meta.get("seconds", {}).items()})
    meta, windows = load_bundle(bundle_dir, model.num_vertices)
    if meta.get("static_camera") or meta.get("camera_mode") in ("static", "rotation"):
        # the cameras are known (identical, or rotations and focals fitted to the background) and the
        # ground plane came from the metric bodies: hold the scene (poses, depth sizes, focal) and fit
        # the people to it; Adam would otherwise random-walk the cameras on the near-zero gradients
        # of exact identity matches
        cfg = dataclasses.replace(cfg, solve=dataclasses.replace(cfg.solve, optimize_cameras=False,
                                                                 optimize_focal=False))

    # ---- solve each window (finished ones are skipped)
    t = time.perf_counter()
    infos = []
    for i, w in enumerate(windows):
        prefix = solved / f"window_{i:03d}"
        if (solved / f"window_{i:03d}_results.npz").is_file():
            infos.append(json.loads(prefix.with_suffix(".json").read_text()))
            continue
        _log(f"window {i + 1}/{len(windows)}: frames {w.frame_index[0]}-{w.frame_index[-1]}, "
             f"{w.num_keyframes} keyframes, {w.num_tracks} person track(s)")
        infos.append(_solve_window(w, model, cfg, prefix))
    seconds["solve"] = time.perf_counter() - t

    # ---- join, export (into a temp folder moved into place at the end)
    t = time.perf_counter()
    res, sims = join_windows([load_results(solved / f"window_{i:03d}_results.npz") for i in range(len(windows))])
    init, _ = join_windows([load_results(solved / f"window_{i:03d}_init.npz") for i in range(len(windows))])
    seconds["join"] = time.perf_counter() - t
    with atomic_folder(out, out.name) as tmp:
        save_npz(tmp / "results.npz", res)
        save_npz(tmp / "init.npz", init)
        t = time.perf_counter()
        from .demo_synthetic import plot_trajectory

        plot_trajectory(tmp)
        plot_losses(solved, len(windows), tmp / "loss_curve.png")
        if cfg.output.glb:
            from .export import write_glb

            write_glb(res, model, tmp / "scene.glb", every=cfg.output.glb_every)
        seconds["export"] = time.perf_counter() - t
        outputs = ["results.npz", "init.npz", "trajectory.png", "loss_curve.png"] + (["scene.glb"] if cfg.output.glb else [])
        if cfg.output.overlay:
            from .overlay import write_overlay

            t = time.perf_counter()
            stills = tmp / "overlay_frames"
            stills.mkdir()
            fr = res["frame_index"]
            picks = {int(fr[int(q * (len(fr) - 1))]): stills / f"frame_{int(fr[int(q * (len(fr) - 1))]):05d}.png"
                     for q in (0.0, 0.5, 1.0)}
            write_overlay(res, model, info, tmp / "overlay.mp4", cfg.output.overlay_side, sample_png=picks)
            seconds["overlay"] = time.perf_counter() - t
            outputs += ["overlay.mp4", "overlay_frames/"]
        if cfg.output.rerun:
            from .rerun_export import write_rrd

            t = time.perf_counter()
            write_rrd(res, model, info, tmp / "recording.rrd")
            seconds["rerun"] = time.perf_counter() - t
            outputs.append("recording.rrd")
        tracks = load_tracks(bundle_dir / "tracks.npz")
        summary = {
            "video": str(info.path), "frames": int(info.num_frames), "start": info.start, "fps": info.fps,
            "people": len(tracks), "windows": len(windows), "body_model": model.name,
            "front_ends": args.frontends, "static_camera": bool(meta.get("static_camera", False)),
            "camera": {"mode": meta.get("camera_mode") or ("static" if meta.get("static_camera") else
                                                           "sfm" if args.frontends == "default" else "point maps"),
                       "evidence": meta.get("camera_evidence"), "keyframe_focals": meta.get("keyframe_focals")},
            "coverage": meta.get("coverage") or {"first": int(res["frame_index"][0]), "last": int(res["frame_index"][-1]),
                                                 "frames": int(len(res["frame_index"])), "reason": ""},
            "registered_keyframes": meta.get("registered"), "keyframes": meta.get("keyframes"),
            "focal_working_px": meta.get("focal"), "window_info": infos,
            "window_similarities": [{"scale": s, "R": R.tolist(), "t": tt.tolist()} for s, R, tt in sims],
            "outputs": outputs, "config": cfg.to_dict(),
        }
        gt = video.with_name(video.stem + "_gt.npz")
        if video == EXAMPLE_CLIP and gt.is_file() and info.start == 0:
            summary["example_clip_check"] = _example_check(res, gt)
        seconds["total"] = time.perf_counter() - t_all
        summary["seconds"] = seconds
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return summary


def _print_summary(s: dict, out: Path) -> None:
    sec = s["seconds"]
    fe = sum(v for k, v in sec.items() if k.startswith("frontends_"))
    cov = s.get("coverage") or {}
    cam = (s.get("camera") or {}).get("mode", "?")
    covered = (f"frames {cov['first']}-{cov['last']} of {s['frames']} ({cov['reason']})" if cov.get("reason")
               else f"{s['frames']} frames")
    _log(f"camera: {cam} ({((s.get('camera') or {}).get('evidence') or {}).get('reason', '')})")
    _log(f"done: {covered}, {s['people']} person track(s), {s['windows']} window(s) in {sec['total']:.0f} s "
         f"(front ends {fe:.0f} s, solve {sec['solve']:.0f} s, overlay {sec.get('overlay', 0):.0f} s)")
    if "example_clip_check" in s:
        c = s["example_clip_check"]
        _log(f"example clip vs its ground truth: camera path {c['camera_path_m']:.2f} m "
             f"(true {c['true_camera_path_m']:.2f} m), mean camera error {c['camera_error_mean_m']:.2f} m")
    _log(f"outputs in {out}/: " + ", ".join(s["outputs"] + ["summary.json"]))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.synthetic:
        from .demo_synthetic import main as synthetic_main

        return synthetic_main(["--out", str(args.out), "--seed", str(args.seed), "--body-model", str(args.body_model)]
                              + (["--overwrite"] if args.overwrite else []))
    from .body import BodyModelError
    from .bundle import BundleError
    from .config import ConfigError
    from .frontends import FrontEndError

    try:
        if args.device == "gpu":
            import jax

            if not any(d.platform == "gpu" for d in jax.devices()):
                raise DemoError("--device gpu: JAX sees no GPU; install the CUDA extra (pip install -e '.[gpu]')")
        summary = run(args)
    except (DemoError, FrontEndError, BodyModelError, BundleError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        work = args.out.with_name(args.out.name + ".work")
        if work.exists() and not any((work / "solved").glob("window_*_results.npz")):
            shutil.rmtree(work, ignore_errors=True)  # nothing worth resuming: leave no trace
        return 2
    except KeyboardInterrupt:
        work = args.out.with_name(args.out.name + ".work")
        print(f"\ninterrupted: finished windows are kept in {work}; run the same command again to resume "
              f"(or pass --fresh to start over). {args.out} was not touched.", file=sys.stderr)
        return 130
    _print_summary(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
