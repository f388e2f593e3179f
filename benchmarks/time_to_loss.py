"""Time to result: seconds until each solver method reaches the Adam schedule's final loss.

    python benchmarks/time_to_loss.py [--quick] [--rounds N] [--json OUT.json] [--plot OUT.png]

Measurement rules
- Problems: benchmarks/throughput.py's synthetic windows (same sizes: 11/21/41 keyframes,
  1/2/4 tracks; --quick: the default 21-keyframe, 1-track window only).
- Every measurement runs in its own fresh subprocess (peak memory = its ru_maxrss). The
  methods are interleaved (adam, gn, adam, gn, ...) for ``--rounds`` rounds, because the
  machine may be shared; each row reports the minimum over rounds.
- In a worker: a first call (compile + run; ``compile_s`` = first call - steady solve),
  then ``--repeats`` timed solves with ``block_until_ready``; ``solve_s`` is the fastest.
  Those timed solves report every iteration to the host (``progress_every=1``, a host
  callback that records a timestamp; it costs well under 1 % of an iteration), which gives
  the loss-versus-seconds curve of the fastest run.
- ``target_loss`` = the Adam schedule's (500 + 200) final loss on that problem + 1 %;
  ``time_to_loss_s`` = the first time a stage-2 loss of the method is at or below it
  (null if never). Only stage-2 losses count: stage 1 minimises another objective.
- ``iterations``: optimizer iterations run (Adam: 500 + 200; gn: up to its last decrease).
- The machine, versions and core count go into the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import DEFAULT, make_problem  # noqa: E402
from benchmarks.timing import time_calls  # noqa: E402

METHODS = ("adam", "gn")


def spawn(args: list[str]) -> dict:
    """Run this script as a worker in a fresh process; its last stdout line is the JSON row."""
    import subprocess

    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env.setdefault("PYTHONPATH", str(ROOT))
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def sizes_grid(quick: bool) -> list[dict]:
    if quick:
        return [DEFAULT]
    return [DEFAULT] + [dict(DEFAULT, keyframes=k) for k in (11, 41)] + [dict(DEFAULT, tracks=t) for t in (2, 4)]


def config(method: str):
    from josh_jax.solve import SolveConfig

    return SolveConfig(method=method)


def worker(method: str, size: dict, repeats: int) -> dict:
    import jax
    import numpy as np

    from josh_jax.losses import LossWeights
    from josh_jax.solve import solve, solver

    stamps: list = []

    def record(label, stage, it, n):  # replaces the progress bars: (stage, it, time)
        stamps.append((int(np.max(stage)), int(np.max(it)), time.perf_counter()))

    solver._progress = record  # before the first trace: the callback is bound when compiled
    problem, _, window = make_problem(**size)
    cfg = _with_progress(config(method))  # the timed program: with the per-iteration stamps
    timed = time_calls(
        lambda: solve(problem, LossWeights(), cfg), repeats, before=stamps.clear, after=lambda: list(stamps)
    )
    first, wall, res, t0, t1, st = timed
    curve = _curve(method, res, st, t0, t1)
    h2 = np.asarray(res.stage2.history.total)
    h1 = np.asarray(res.stage1.history.total)
    if method == "adam":
        iters = len(h1) + len(h2)
    else:
        iters = sum(int(np.max(np.nonzero(np.diff(h) != 0)[0], initial=-1)) + 1 for h in (h1, h2))
    return dict(
        method=method,
        **size,
        matches=int((problem.scene.corr_w > 0).sum()),
        pairs=int(len(window.pair_index)),
        compile_s=max(first - wall, 0.0),
        first_call_s=first,
        solve_s=wall,
        iterations=iters,
        final_loss=float(h2[-1]),
        stage1_final_loss=float(h1[-1]),
        curve=curve,
        peak_mem_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        device=str(jax.devices()[0]),
    )


def _with_progress(cfg):
    import dataclasses

    return dataclasses.replace(cfg, progress_every=1)


def _curve(method: str, res, stamps, t0: float, t1: float) -> list:
    """[(seconds since the solve started, stage, loss)] for every recorded loss: a loss counts
    from the end of the iteration that computed it (the next iteration's start stamp)."""
    import numpy as np

    out = []
    by_stage = {s: {it: t for (st, it, t) in stamps if st == s} for s in (1, 2)}
    ends = {1: min(by_stage[2].values(), default=t1), 2: t1}
    for s, hist in ((1, res.stage1.history.total), (2, res.stage2.history.total)):
        h = np.asarray(hist)
        S = by_stage[s]
        start = S.get(1, t0)

        def end_of(j):  # iteration j (0-based) ends when iteration j + 1 starts (stamp it = j + 2)
            return S.get(j + 2, ends[s])

        for i, v in enumerate(h):
            if method == "adam":
                t = end_of(i)
            else:  # gn: entry 0 is the start, entry i the loss after iteration i - 1
                t = start if i == 0 else end_of(i - 1)
            out.append((round(t - t0, 4), s, float(v)))
    return out


def time_to(curve: list, target: float):
    for t, s, v in curve:
        if s == 2 and v <= target:
            return t
    return None


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({(r["keyframes"], r["tracks"]) for r in rows})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), dpi=100, squeeze=False)
    for ax, (K, P) in zip(axes[0], sizes):
        target = None
        for r in rows:
            if (r["keyframes"], r["tracks"]) != (K, P):
                continue
            target = r["target_loss"]
            c = r["curve"]
            ax.semilogy(
                [t for t, s, v in c],
                [v for t, s, v in c],
                "o-" if r["method"] == "gn" else "-",
                ms=3,
                label=f"{r['method']} (stage 1, then 2)",
            )
        if target:
            ax.axhline(target, color="k", ls=":", lw=1, label="Adam final + 1 %")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("seconds since the solve started (compile apart)")
        ax.set_ylabel("loss of the current stage")
        ax.set_title(f"{K} keyframes, {P} track(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the default 21-keyframe window only")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of all methods (minimum reported)")
    ap.add_argument("--repeats", type=int, default=1, help="timed solves per worker")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--size", default=None, help="JSON dict of keyframes/tracks/cpp (overrides the grid)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument(
        "--adam-from",
        type=Path,
        default=None,
        help="reuse the Adam rows of an earlier JSON of this script (same sizes) instead of rerunning them",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.size), args.repeats)))
        return 0
    methods = args.methods.split(",")
    if "adam" not in methods:
        methods = ["adam"] + methods  # the target comes from the Adam schedule
    earlier = json.loads(args.adam_from.read_text())["rows"] if args.adam_from else []
    grid = [json.loads(args.size)] if args.size else sizes_grid(args.quick)
    rows = []
    for size in grid:
        best: dict = {}
        for _ in range(args.rounds):
            for m in methods:
                old = [x for x in earlier if x["method"] == m == "adam" and all(x[k] == v for k, v in size.items())]
                if old:
                    best[m] = old[0]
                    continue
                r = spawn(["--worker", m, "--size", json.dumps(size), "--repeats", str(args.repeats)])
                print(
                    f"  {m:>5} K={size['keyframes']} P={size['tracks']}: solve {r['solve_s']:.2f} s, compile "
                    f"{r['compile_s']:.1f} s, final loss {r['final_loss']:.5f}",
                    file=sys.stderr,
                    flush=True,
                )
                if m not in best or r["solve_s"] < best[m]["solve_s"]:
                    keep = dict(r, compile_s=min(r["compile_s"], best.get(m, r)["compile_s"]))
                    best[m] = keep
        target = 1.01 * best["adam"]["final_loss"]
        for m in methods:
            r = best[m]
            r.update(
                target_loss=target,
                time_to_loss_s=time_to(r["curve"], target),
                speedup_vs_adam=best["adam"]["solve_s"] / r["solve_s"],
            )
            ttl = r["time_to_loss_s"]
            r["time_to_loss_speedup_vs_adam"] = (
                (best["adam"]["time_to_loss_s"] or best["adam"]["solve_s"]) / ttl if ttl else None
            )
            rows.append(r)
    from benchmarks.throughput import machine_info

    info = machine_info("cpu")
    info["load_average_at_end"] = os.getloadavg()
    out = dict(machine=info, rounds=args.rounds, rows=rows)
    print(
        "\n| method | K | tracks | matches | compile (s) | solve (s) | time to Adam loss +1 % (s) | iterations | "
        "final loss | target | peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ttl = "never" if r["time_to_loss_s"] is None else f"{r['time_to_loss_s']:.2f}"
        print(
            f"| {r['method']} | {r['keyframes']} | {r['tracks']} | {r['matches']} | {r['compile_s']:.1f} | "
            f"{r['solve_s']:.2f} | {ttl} | {r['iterations']} | {r['final_loss']:.5f} | {r['target_loss']:.5f} | "
            f"{r['peak_mem_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
