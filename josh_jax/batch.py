"""``python -m josh_jax.batch INPUTS... --out DIR``: many videos on Ray, each with the demo's outputs.

INPUTS are video files, folders of videos, or text files listing them (one path a line, ``#``
comments, relative paths from the list's folder). With no ``--address`` an embedded local Ray is
started (this machine's CPUs, dashboard off, loopback only); ``--address auto`` or ``ray://HOST:PORT``
joins a running cluster. Each video is a chain of Ray tasks running the demo's own stages
(:mod:`josh_jax.demo`: prepare -> front ends -> one task per solve window -> join and export), so
``DIR/<video name>/`` holds exactly what ``python -m josh_jax.demo VIDEO --out DIR/<video name>``
writes. ``DIR/batch_summary.json`` and ``.csv`` have one row per video. See docs/batch.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from josh_jax.errors import JoshError

MAX_LIST_BYTES = 16 * 2**20  # the largest video list file read
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
LIST_SUFFIXES = (".txt", ".lst", ".list")
# fault injection for the tests: the first window task that finds this file missing creates it and
# ends its worker process (as an OOM kill would); Ray then retries the task on a fresh worker
CRASH_ONCE_ENV = "JOSH_JAX_BATCH_CRASH_ONCE"
EXIT_SOME_FAILED = 3  # not 1, which is also Python's exit code after a traceback


class BatchError(JoshError, RuntimeError):
    """A one-line reason the whole batch cannot start (bad arguments, no inputs, Ray missing)."""


def _log(msg: str) -> None:
    print(f"[batch] {msg}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    from josh_jax._cli.checks import OneLineParser, nonnegative_int, positive_float, positive_int

    from .demo import add_run_args

    ap = OneLineParser(prog="python -m josh_jax.batch", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="video files, folders of videos, or .txt files listing videos",
    )
    ap.add_argument("--out", type=Path, required=True, help="output folder: DIR/<video name>/ per video")
    ap.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: 'auto' (the local `ray start` head), HOST:PORT or ray://HOST:PORT "
        "(default: start an embedded local Ray)",
    )
    ap.add_argument(
        "--num-cpus",
        type=positive_int,
        default=None,
        help="CPUs of the embedded local Ray (default: all of this machine's); ignored with --address",
    )
    add_run_args(ap)  # the demo's run flags: each video runs the demo with them
    ap.add_argument(
        "--gpus-per-solve",
        type=positive_float,
        default=None,
        metavar="N",
        help="GPUs a window-solve task asks Ray for (e.g. 0.25 packs four solves on a GPU; default 0)",
    )
    ap.add_argument(
        "--cpus-per-task", type=positive_float, default=1.0, metavar="N", help="CPUs each task asks Ray for (default 1)"
    )
    ap.add_argument(
        "--vmap-windows",
        type=positive_int,
        default=1,
        metavar="B",
        help="solve up to B windows of one size bucket (from any videos) in one vmapped task; "
        "1 (default) = a task per window, the faster choice on CPU (docs/batch.md); try 8 on a GPU",
    )
    ap.add_argument(
        "--max-retries", type=nonnegative_int, default=2, help="times a task whose worker died is retried (default 2)"
    )
    ap.add_argument("--verbose", action="store_true", help="forward the workers' logs to this terminal")
    return ap


# ------------------------------------------------------------------ inputs


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Video paths from files, folders (their videos, sorted, not recursive) and list files, in order,
    each once. A path that does not exist is kept: its row reports the demo's error."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            vids = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
            if not vids:
                raise BatchError(f"folder {p} has no videos ({', '.join(VIDEO_SUFFIXES)}); name video files or folders")
            out += vids
        elif p.suffix.lower() in LIST_SUFFIXES:
            try:
                if p.stat().st_size > MAX_LIST_BYTES:
                    raise BatchError(f"the list file {p} is over {MAX_LIST_BYTES // 2**20} MiB; list fewer videos")
                lines = p.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise BatchError(f"cannot read the list file {p}: {exc}") from None
            for line in lines:
                line = line.split("#", 1)[0].strip()
                if line:
                    q = Path(line).expanduser()
                    out.append(q if q.is_absolute() else p.parent / q)
        else:
            out.append(p)
    seen, unique = set(), []
    for p in out:
        key = str(p.absolute())
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if not unique:
        raise BatchError("no videos in the inputs; name video files, folders of videos or list files")
    return unique


def output_names(videos: list[Path]) -> list[str]:
    """``DIR/<name>`` per video: the file's stem; a stem used twice gets its parent folder's name."""
    stems = [v.stem for v in videos]
    names = [s if stems.count(s) == 1 else f"{v.parent.name}_{s}" for s, v in zip(stems, videos)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BatchError(f"two inputs would both write {dup[0]}/; rename one of the videos")
    bad = [n for n in names if n.startswith(".") or n.startswith("batch_summary")]
    if bad:
        raise BatchError(f"a video named {bad[0]!r} cannot be an output folder name; rename it")
    return names


def video_spec(video: Path, out: Path, args):
    """The :class:`josh_jax.run.RunSpec` of one batch video: the batch's run flags, its video and its
    output folder (the outputs ``python -m josh_jax.demo VIDEO --out OUT`` with those flags writes)."""
    from .run.spec import RunSpec

    return RunSpec.from_args(args).for_video(video, out)


# ------------------------------------------------------------------ the stages, as run by a worker


def _worker_setup(spec: dict):
    """The run's :class:`josh_jax.run.RunSpec` from a task's dict (and the worker's device and compile
    cache, set once)."""
    from .run.spec import RunSpec

    spec = RunSpec.from_dict(spec)
    if spec.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from .solve.compile_cache import enable as enable_compile_cache

    enable_compile_cache(spec.compile_cache)
    return spec


def _guard(fn, spec: dict, *rest) -> dict:
    """``fn(spec, *rest)`` with the run's expected failures (:class:`josh_jax.errors.JoshError`, OSError)
    turned into ``{"error": line}`` (such a task is reported, not retried); anything else raises (and is
    reported by the driver as one line)."""
    import resource

    from josh_jax._cli.checks import error_line

    from .solve.memory_maps import release_if_crowded

    spec = _worker_setup(spec)
    try:
        res = fn(spec, *rest)
    except (JoshError, OSError) as exc:
        res = {"error": error_line(exc, spec.out)}
    finally:
        release_if_crowded()  # a long-lived worker compiles a program per bucket (docs/solver.md)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this worker's, so far
    return res


def stage_prepare(spec, buckets: bool = False) -> dict:
    """decode/check and front ends of one video; the windows still to solve (and, with ``buckets``,
    each one's :func:`josh_jax.run.stages.window_bucket`, for grouping them into vmapped solves)."""
    from .run import stages

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    p = stages.prepare(spec)
    seconds["decode_check"] = time.perf_counter() - t
    p, _, windows = stages.front_ends(p, seconds)
    done = [i for i in range(len(windows)) if stages.window_done(p, i)]
    todo = [i for i in range(len(windows)) if i not in done]
    if not p.method.optimizes:
        todo, done = [], []  # no optimization (none to count on the windows bar): the finish stage writes them
    out = {
        "windows": len(windows),
        "todo": todo,
        "solved": len(done),  # solved before (a resumed run): counted as done on the windows bar
        "frames": int(p.info.num_frames),
        "seconds": seconds,
    }
    if buckets:
        out["buckets"] = {str(i): stages.window_bucket(p, windows, i) for i in todo}
    return out


def stage_window(spec, i: int, crash_marker: str | None = None) -> dict:
    """The joint (and with ``--baseline`` the front-ends-only) solve of window i of one video (from the
    work folder)."""
    from .run import stages

    if crash_marker and not Path(crash_marker).exists():
        Path(crash_marker).write_text(f"worker {os.getpid()} exited on purpose in window {i}\n")
        os._exit(1)
    t = time.perf_counter()
    p = stages.prepare(spec, attach=True)
    p, _, windows = stages.front_ends(p)
    info = stages.solve_window(p, windows, i)
    return {"window": i, "final_loss": info["final_loss"], "seconds": time.perf_counter() - t}


def stage_finish(spec, seconds: dict) -> dict:
    """Join and export of one video into its output folder; its summary.json."""
    from .run import stages

    p = stages.prepare(spec, attach=True)
    p, meta, windows = stages.front_ends(p)
    return {"summary": stages.finish(p, meta, windows, seconds)}


def _run_prepare(spec: dict, buckets=False):
    return _guard(stage_prepare, spec, buckets)


def _run_group(members: list, crash_marker: str | None = None) -> dict:
    """Windows of several videos (``members``: (run spec dict, window index)) in one vmapped solve
    (:func:`josh_jax.run.stages.solve_windows_vmapped`); one result (or one-line error) per member. When the
    group cannot be solved together (a window refused), its windows are solved one by one."""
    import resource

    from josh_jax._cli.checks import error_line

    from .run import stages

    errors = (JoshError, OSError)
    results: list = [None] * len(members)
    items = []
    for m, (spec, i) in enumerate(members):
        spec = _worker_setup(spec)
        try:
            p = stages.prepare(spec, attach=True)
            p, _, windows = stages.front_ends(p)
            items.append((m, spec, p, windows, i))
        except errors as exc:
            results[m] = {"error": error_line(exc, spec.out)}
    if crash_marker and not Path(crash_marker).exists():
        Path(crash_marker).write_text(f"worker {os.getpid()} exited on purpose in a group of {len(members)}\n")
        os._exit(1)
    try:
        t = time.perf_counter()
        infos = stages.solve_windows_vmapped([(p, w, i) for _, _, p, w, i in items])
        share = (time.perf_counter() - t) / max(len(items), 1)
        for (m, _, _, _, i), info in zip(items, infos):
            results[m] = {"window": i, "final_loss": info["final_loss"], "seconds": share}
    except (*errors, ValueError):
        for m, spec, p, w, i in items:
            try:
                t = time.perf_counter()
                info = stages.solve_window(p, w, i)
                results[m] = {"window": i, "final_loss": info["final_loss"], "seconds": time.perf_counter() - t}
            except errors as exc:
                results[m] = {"error": error_line(exc, spec.out)}
    from .solve.memory_maps import release_if_crowded

    release_if_crowded()
    return {"members": results, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_window(spec: dict, i, crash_marker):
    return _guard(stage_window, spec, i, crash_marker)


def _run_finish(spec: dict, seconds):
    return _guard(stage_finish, spec, seconds)


# ------------------------------------------------------------------ the driver


def _import_ray(address: str | None):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports over the network
    # a cluster started by `ray start` uses token authentication by default (Ray 2.60) and keeps its token
    # in ~/.ray/auth_token; a driver sends it only in token mode, read when ray is imported
    if (
        address
        and "RAY_AUTH_MODE" not in os.environ
        and (os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file())
    ):
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise BatchError("python -m josh_jax.batch needs Ray: pip install -e '.[cluster]'") from None
    return ray


def _start_ray(ray, args) -> bool:
    """Connect to ``--address`` or start an embedded local Ray; returns whether we started it."""
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, log_to_driver=args.verbose, configure_logging=False)
    if args.address:
        try:
            ray.init(address=args.address, **kw)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise BatchError(
                f"cannot join the Ray cluster at {args.address}: {' '.join(str(exc).split())[:300]}; "
                "start one with `ray start --head` or leave out --address"
            ) from None
        return True
    # address="local": a new Ray of our own even when a `ray start` cluster runs on this machine
    ray.init(
        address="local",
        num_cpus=args.num_cpus or os.cpu_count(),
        _node_ip_address="127.0.0.1",
        object_store_memory=256 * 2**20,
        **kw,
    )
    return True


def _row(name: str, video: Path, out: Path) -> dict:
    return {
        "name": name,
        "video": str(video),
        "out": str(out),
        "status": "pending",
        "error": "",
        "frames": None,
        "people": None,
        "windows": None,
        "final_loss": [],
        "seconds": {},
        "peak_rss_mb": None,
    }


def _fill_from_summary(row: dict, s: dict) -> None:
    row.update(
        frames=s.get("frames"),
        people=s.get("people"),
        windows=s.get("windows"),
        final_loss=[w.get("final_loss") for w in s.get("window_info", [])],
    )
    sec = s.get("seconds", {})
    row["seconds"] = {
        "decode_check": sec.get("decode_check", 0.0),
        "frontends": sum(v for k, v in sec.items() if k.startswith("frontends_")),
        "solve": sec.get("solve", 0.0),
        "join": sec.get("join", 0.0),
        "export": sec.get("export", 0.0),
        "overlay": sec.get("overlay", 0.0),
        "total": sec.get("total", 0.0),
    }


CSV_FIELDS = (
    "name",
    "status",
    "error",
    "frames",
    "people",
    "windows",
    "final_loss",
    "seconds_decode_check",
    "seconds_frontends",
    "seconds_solve",
    "seconds_join",
    "seconds_export",
    "seconds_overlay",
    "seconds_total",
    "peak_rss_mb",
    "video",
    "out",
)


def write_summaries(out: Path, rows: list[dict], meta: dict) -> None:
    """``batch_summary.json`` and ``batch_summary.csv`` in ``out``, each written atomically."""
    from josh_jax._cli.atomic import write_text_atomic

    write_text_atomic(out / "batch_summary.json", json.dumps({**meta, "videos": rows}, indent=1, default=str))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        flat = {k: r.get(k) for k in CSV_FIELDS if not k.startswith("seconds_")}
        flat["peak_rss_mb"] = "" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"
        flat["final_loss"] = ";".join(f"{x:.6g}" for x in r.get("final_loss") or [] if x is not None)
        for k in CSV_FIELDS:
            if k.startswith("seconds_"):
                v = (r.get("seconds") or {}).get(k[len("seconds_") :])
                flat[k] = "" if v is None else f"{v:.2f}"
        w.writerow(flat)
    write_text_atomic(out / "batch_summary.csv", buf.getvalue())


def finished_summary(path: Path) -> dict:
    """A finished video's summary.json (checked: :func:`josh_jax.jsonfile.read_json`)."""
    from josh_jax.jsonfile import JsonFileError, read_json

    try:
        return read_json(path, "summary.json", f"move {path.parent} away to run that video again")
    except JsonFileError as exc:
        raise BatchError(str(exc)) from None


def run_batch(args) -> tuple[list[dict], int]:
    """Run every video; returns (rows, exit code). Finished videos (``DIR/<name>/summary.json``) are
    skipped without starting Ray; each other video resumes from its ``DIR/<name>.work``."""
    from josh_jax._cli.atomic import check_output
    from josh_jax._cli.lock import RunLock

    t0 = time.perf_counter()
    videos = expand_inputs(args.inputs)
    names = output_names(videos)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise BatchError(f"--out {out} is an existing file, not a folder; choose a folder path")
    check_output(out, inputs=[*videos, args.config], overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as locks:  # one run per output: this batch on DIR, and on each video's DIR/<name>
        for o in (out, *(out / n for n in names)):
            locks.enter_context(RunLock(o))
        return _run_videos(args, out, videos, names, t0)


def _run_videos(args, out: Path, videos: list, names: list, t0: float) -> tuple[list[dict], int]:
    """run_batch's work once its outputs are checked and locked."""
    from tqdm import tqdm

    from josh_jax._cli.atomic import clean_stale

    from .run import stages

    clean_stale(out)  # temp folders of a batch killed mid-export
    rows = [_row(n, v, out / n) for n, v in zip(names, videos)]
    todo = []
    for r, v in zip(rows, videos):
        o = Path(r["out"])
        if (o / "summary.json").is_file():  # finished by an earlier run (DIR/<name>/ is moved in whole)
            r["status"] = "skipped"
            _fill_from_summary(r, finished_summary(o / "summary.json"))
            work = o.with_name(o.name + ".work")
            if (work / "fingerprint.json").is_file():  # left by a run killed between the move and the cleanup
                shutil.rmtree(work, ignore_errors=True)
        else:
            todo.append((r, video_spec(v, o, args).to_dict()))
    meta = {
        "command": "python -m josh_jax.batch " + " ".join(getattr(args, "argv", None) or sys.argv[1:]),
        "address": args.address or "embedded local Ray",
    }
    if not todo:
        _log(f"all {len(rows)} video(s) already finished in {out}; nothing to do")
        meta["seconds"] = time.perf_counter() - t0
        write_summaries(out, rows, meta)
        return rows, 0

    ray = _import_ray(args.address)
    started = _start_ray(ray, args)
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        _log(f"{len(todo)} video(s) to run ({len(rows) - len(todo)} already finished) on Ray with {cpus:.0f} CPU(s)")
        opts = dict(num_cpus=args.cpus_per_task, max_retries=args.max_retries, retry_exceptions=False)
        prep_t = ray.remote(_run_prepare).options(**opts)
        win_t = ray.remote(_run_window).options(**opts, num_gpus=args.gpus_per_solve or 0)
        fin_t = ray.remote(_run_finish).options(**opts)
        crash = os.environ.get(CRASH_ONCE_ENV) or None
        grp_t = ray.remote(_run_group).options(**opts, num_gpus=args.gpus_per_solve or 0)
        group = args.vmap_windows
        pending: dict = {}  # ref -> (video index, stage, members of a group)
        pools: dict[str, list] = {}  # bucket -> [(video index, window)] waiting for a vmapped group
        state: dict[int, dict] = {}
        for k, (r, spec) in enumerate(todo):
            pending[prep_t.remote(spec, group > 1)] = (k, "prepare", None)
            state[k] = {"row": r, "spec": spec, "left": set(), "t": time.perf_counter(), "seconds": {}}
        bar_v = tqdm(total=len(todo), desc="videos", unit="video", position=0, file=sys.stderr)
        bar_w = tqdm(total=0, desc="windows", unit="window", position=1, file=sys.stderr)

        def submit_windows(members: list) -> None:
            if len(members) == 1:
                k, i = members[0]
                pending[win_t.remote(state[k]["spec"], i, crash)] = (k, "window", None)
            else:
                pending[grp_t.remote([(state[k]["spec"], i) for k, i in members], crash)] = (-1, "group", members)

        def flush(all_: bool) -> None:
            for key in list(pools):
                while len(pools[key]) >= group or (all_ and pools[key]):
                    submit_windows(pools[key][:group])
                    pools[key] = pools[key][group:]
                if not pools[key]:
                    del pools[key]

        def handle(k: int, stage: str, res: dict) -> None:
            st, r = state[k], state[k]["row"]
            if r["status"] == "failed":
                return
            r["peak_rss_mb"] = max(r.get("peak_rss_mb") or 0.0, res.get("peak_rss_mb", 0.0))
            if "error" in res:
                r.update(status="failed", error=res["error"])
                _log(f"{r['name']}: {res['error']}")
                for ref2 in [q for q, (k2, _, _) in pending.items() if k2 == k]:
                    ray.cancel(ref2, force=True)
                for key in pools:
                    pools[key] = [m for m in pools[key] if m[0] != k]
                bar_v.update(1)
                return
            if stage == "prepare":
                st["seconds"] = res["seconds"]
                r.update(frames=res["frames"], windows=res["windows"])
                bar_w.total += res["solved"] + len(res["todo"])
                bar_w.update(res["solved"])
                st["left"] = set(res["todo"])
                for i in res["todo"]:
                    if group > 1:
                        pools.setdefault(res["buckets"][str(i)], []).append((k, i))
                    else:
                        submit_windows([(k, i)])
            elif stage == "window":
                st["left"].discard(res["window"])
                st["solve_s"] = st.get("solve_s", 0.0) + res.get("seconds", 0.0)
                bar_w.update(1)
            elif stage == "finish":
                r["status"] = "done"
                _fill_from_summary(r, res["summary"])
                r["seconds"]["wall"] = time.perf_counter() - st["t"]
                bar_v.update(1)
            if stage in ("prepare", "window") and not st["left"] and "finish" not in st:
                st["finish"] = True
                st["seconds"]["solve"] = st.get("solve_s", 0.0)  # the window tasks' own seconds, not queueing
                pending[fin_t.remote(st["spec"], st["seconds"])] = (k, "finish", None)

        try:
            while pending or pools:
                if pools and not any(stage == "prepare" for _, stage, _ in pending.values()):
                    flush(True)  # every video is prepared: partial groups go too
                if not pending:
                    continue
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    k, stage, members = pending.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as exc:  # the task raised, or its worker died more than --max-retries times
                        res = {"error": _ray_error_line(exc, stage, args.max_retries)}
                    if stage == "group":
                        for m, (k2, i) in enumerate(members):
                            one = res["members"][m] if "members" in res else res
                            handle(k2, "window", {**one, "peak_rss_mb": res.get("peak_rss_mb", 0.0)})
                    else:
                        handle(k, stage, res)
                if group > 1:
                    flush(False)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()
                started = False
            time.sleep(0.5)
            clean_stale(out)
            for r in rows:
                if r["status"] == "pending":
                    r["status"] = "interrupted"
            meta["seconds"] = time.perf_counter() - t0
            write_summaries(out, rows, meta)
            raise
        finally:
            bar_w.close()
            bar_v.close()
    finally:
        if started:
            ray.shutdown()
    for r in rows:
        if r["status"] == "failed":
            stages.drop_unfinished(Path(r["out"]).with_name(Path(r["out"]).name + ".work"), True)
            work = Path(r["out"]).with_name(Path(r["out"]).name + ".work")
            if work.exists() and "kept in" not in r["error"]:
                r["error"] += f"; the solved windows are kept in {work} (the same command resumes)"
    meta["seconds"] = time.perf_counter() - t0
    write_summaries(out, rows, meta)
    failed = [r for r in rows if r["status"] == "failed"]
    return rows, EXIT_SOME_FAILED if failed else 0


def _ray_error_line(exc: BaseException, stage: str, retries: int) -> str:
    """One line for a task that raised an unexpected error or whose worker kept dying."""
    name = type(exc).__name__
    if "WorkerCrashed" in name or "NodeDied" in name or "ActorDied" in name:
        return (
            f"error: the worker running the {stage} stage died {retries + 1} time(s) "
            f"(out of memory? see the Ray logs); raise --max-retries or give the tasks more memory"
        )
    cause = getattr(exc, "cause", None) or exc
    text = " ".join(str(cause).split()) or type(cause).__name__
    if "TaskCancelled" in name:
        return f"error: the {stage} task was cancelled"
    return f"error: {type(cause).__name__} in the {stage} stage: {text[-300:]}"


def _interrupted_message(out: Path) -> str:
    return (
        f"interrupted: {out} holds only complete per-video outputs (and DIR/<name>.work folders with the "
        "finished windows); run the same command again to resume"
    )


def main(argv=None) -> int:
    from josh_jax._cli.checks import EXIT_BAD_INPUT, error_line

    args = _parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        rows, code = run_batch(args)
    except (JoshError, OSError) as exc:
        print(error_line(exc, args.out), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\n" + _interrupted_message(args.out), file=sys.stderr)
        return 130
    done = sum(r["status"] in ("done", "skipped") for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    _log(
        f"{done} of {len(rows)} video(s) finished, {len(failed)} failed; summary in "
        f"{args.out / 'batch_summary.json'} and .csv"
    )
    for r in failed:
        print(f"{r['name']}: {r['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
