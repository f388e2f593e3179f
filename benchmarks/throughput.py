"""Optimizer throughput: josh_jax against the PyTorch reference flavours.

    python benchmarks/throughput.py [--quick] [--device cpu|gpu] [--json OUT.json] [--plot OUT.png]

Measurement rules
- Every (implementation, problem) runs in its own fresh subprocess, so peak
  memory (ru_maxrss of that process, or the CUDA allocator's peak) is its own.
- Problems come from josh_jax.synthetic.worlds: one person walking, window-10 pairs in
  both orders (155 pairs -> 310 for 21 keyframes, as the reference), sized by
  keyframes, tracks and correspondences per pair. All three implementations
  get the same problem and the same starting point.
- JAX: the first solve (compile + run) is reported apart; steady state is the
  minimum of ``--repeats`` full solves (500 + 200 iterations) with
  ``block_until_ready``.
- PyTorch flavours: 3 warm-up iterations per stage, then the minimum over
  repeats of the mean time of ``--torch-iters`` iterations per stage; a full
  solve is 500 x t(stage 1) + 200 x t(stage 2) (the loop has no other cost).
- The vmapped solver: B windows of one bucket solved by one ``solve_batch``
  call versus B calls of ``solve``; throughput in windows per second.
- The machine, jax/torch versions and thread counts go into the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = dict(keyframes=21, tracks=1, cpp=1500)
ITERS = (500, 200)


def problem_sizes_grid(quick: bool):
    if quick:
        return [dict(keyframes=11, tracks=1, cpp=500), DEFAULT]
    grid = [DEFAULT]
    grid += [dict(DEFAULT, keyframes=k) for k in (11, 41)]
    grid += [dict(DEFAULT, tracks=t) for t in (2, 4)]
    grid += [dict(DEFAULT, cpp=c) for c in (500, 3000)]
    return grid


def make_problem(keyframes: int, tracks: int, cpp: int, seed: int = 0):
    import dataclasses

    import josh_jax.body as jb
    from josh_jax.problem import build_problem
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    # grid of 8-pixel matches: about 0.6 x W x H / 64 of them land in the partner image
    width = int(round((64 * cpp / (0.6 * 0.75)) ** 0.5 / 8) * 8)
    height = int(round(0.75 * width / 8) * 8)
    cfg = SynthConfig(
        num_keyframes=keyframes,
        width=width,
        height=height,
        focal=0.94 * width,
        people=tracks,
        cam_speed=0.04 * 21 / keyframes,
    )
    cfg = dataclasses.replace(cfg, person_z=4.5)
    model = jb.load("open")
    window, _ = make_world(model, seed, cfg)
    return build_problem(window, model), model, window


def worker(impl: str, size: dict, device: str, repeats: int, torch_iters: int, full_torch: bool) -> dict:

    problem, model, window = make_problem(**size)
    pairs = len(window.pair_index)
    out = dict(
        impl=impl,
        **size,
        correspondences=int(len(window.corr_pair)),
        pairs=pairs,
        corr_per_pair=float(len(window.corr_pair) / max(pairs, 1)),
    )
    if impl == "jax":
        import jax

        from benchmarks.timing import time_calls
        from josh_jax.losses import LossWeights
        from josh_jax.solve import SolveConfig, solve

        cfg = SolveConfig()
        first, steady, res = time_calls(lambda: solve(problem, LossWeights(), cfg), repeats)[:3]
        out.update(
            compile_s=first - steady,
            first_call_s=first,
            full_solve_s=steady,
            s_per_iter=steady / sum(ITERS),
            final_loss=float(res.stage2.history.total[-1]),
            device=str(jax.devices()[0]),
        )
    else:
        import torch

        from benchmarks.torch_reference import faithful, vectorized
        from josh_jax.losses import LossWeights

        dev = "cuda" if device == "gpu" else "cpu"
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        faithful.set_dtype(torch.float32)

        def run(iters):
            if impl == "torch_vectorized":
                return vectorized.solve(problem, LossWeights(), iters, device=dev, sync=sync)
            return faithful.solve(problem, model, LossWeights(), iters)

        per_stage = []
        for stage in (1, 2):
            best = float("inf")
            for _ in range(repeats):
                iters = (3 + torch_iters, 0) if stage == 1 else (0, 3 + torch_iters)
                stamps = []

                def cb(st, it, stamps=stamps):
                    sync()
                    stamps.append(time.perf_counter())

                if impl == "torch_vectorized":
                    vectorized.solve(problem, LossWeights(), iters, device=dev, callback=cb)
                else:
                    faithful.solve(problem, model, LossWeights(), iters, callback=cb)
                best = min(best, (stamps[-1] - stamps[2]) / torch_iters)
            per_stage.append(best)
        out.update(
            s_per_iter_stage1=per_stage[0],
            s_per_iter_stage2=per_stage[1],
            full_solve_s=ITERS[0] * per_stage[0] + ITERS[1] * per_stage[1],
            compile_s=0.0,
            s_per_iter=(ITERS[0] * per_stage[0] + ITERS[1] * per_stage[1]) / sum(ITERS),
            torch_threads=torch.get_num_threads(),
            device=dev,
        )
        if full_torch:
            t = time.perf_counter()
            final, _ = run(ITERS)
            out.update(final_loss=float(final), measured_full_solve_s=time.perf_counter() - t)

    if device == "gpu" and impl != "jax":
        import torch

        out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def batch_worker(batch: int, device: str) -> dict:
    import jax

    from josh_jax.losses import LossWeights
    from josh_jax.problem import build_problem, problem_sizes
    from josh_jax.solve import SolveConfig, solve, solve_batch, stack_problems

    size = dict(keyframes=11, tracks=1, cpp=500)
    first, model, _ = make_problem(**size, seed=0)
    sizes = problem_sizes(first)
    sizes = {k: int(v * 1.5) if k != "keyframes" else v for k, v in sizes._asdict().items()}
    problems = []
    for s in range(batch):
        _, _, w = make_problem(**size, seed=s)
        problems.append(build_problem(w, model, sizes=sizes))
    cfg = SolveConfig()
    stacked = stack_problems(problems)
    jax.block_until_ready(solve_batch(stacked, LossWeights(), cfg))
    t = time.perf_counter()
    jax.block_until_ready(solve_batch(stacked, LossWeights(), cfg))
    t_batch = time.perf_counter() - t
    jax.block_until_ready(solve(problems[0], LossWeights(), cfg))
    t = time.perf_counter()
    for p in problems:
        jax.block_until_ready(solve(p, LossWeights(), cfg))
    t_seq = time.perf_counter() - t
    return dict(
        batch=batch,
        **size,
        batched_s=t_batch,
        sequential_s=t_seq,
        windows_per_s_batched=batch / t_batch,
        windows_per_s_sequential=batch / t_seq,
        speedup=t_seq / t_batch,
        device=str(jax.devices()[0]),
    )


def spawn(args: list[str], env_extra: dict | None = None) -> dict:
    env = dict(os.environ, **(env_extra or {}))
    env.setdefault("PYTHONPATH", str(ROOT))
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def machine_info(device: str) -> dict:
    info = dict(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        processor=platform.processor(),
    )
    try:
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    import jax
    import torch

    info.update(jax=jax.__version__, torch=torch.__version__, jax_device=str(jax.devices()[0]), device=device)
    if device == "gpu" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=100)
    for ax, key, label in zip(
        axes, ("keyframes", "tracks", "cpp"), ("keyframes", "tracks", "correspondences per pair")
    ):
        for impl, style in (("jax", "o-"), ("torch_vectorized", "s--"), ("torch_faithful", "^:")):
            pts = sorted(
                (r[key], r["full_solve_s"])
                for r in rows
                if r["impl"] == impl and all(r[k] == DEFAULT[k] for k in DEFAULT if k != key)
            )
            if pts:
                ax.loglog(*zip(*pts), style, label=impl)
        ax.set_xlabel(label)
        ax.set_ylabel("500 + 200 solve (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--torch-iters", type=int, default=10)
    ap.add_argument("--impls", default="jax,torch_vectorized,torch_faithful")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--full-torch", action="store_true", help="also run the torch flavours' full schedule (final loss)")
    args = ap.parse_args()

    if args.worker == "batch":
        print(json.dumps(batch_worker(int(args.size), args.device)))
        return 0
    if args.worker:
        print(
            json.dumps(
                worker(args.worker, json.loads(args.size), args.device, args.repeats, args.torch_iters, args.full_torch)
            )
        )
        return 0

    env = {"JAX_PLATFORMS": "cuda" if args.device == "gpu" else "cpu"}
    rows = []
    for size in problem_sizes_grid(args.quick):
        for impl in args.impls.split(","):
            full = args.full_torch and size == DEFAULT
            extra = ["--full-torch"] if full else []
            r = spawn(
                [
                    "--worker",
                    impl,
                    "--size",
                    json.dumps(size),
                    "--device",
                    args.device,
                    "--repeats",
                    str(args.repeats),
                    "--torch-iters",
                    str(args.torch_iters),
                    *extra,
                ],
                env,
            )
            rows.append(r)
            print(
                f"{impl:>17} K={r['keyframes']:>2} P={r['tracks']} cpp~{r['corr_per_pair']:.0f} "
                f"({r['correspondences']} corr): solve {r['full_solve_s']:.2f} s, {1000 * r['s_per_iter']:.1f} ms/it, "
                f"compile {r['compile_s']:.1f} s, peak {r['peak_mem_mb']:.0f} MB",
                flush=True,
            )
    for r in rows:
        ref = [x for x in rows if x["impl"] == "torch_faithful" and all(x[k] == r[k] for k in DEFAULT)]
        if ref:
            r["speedup_vs_faithful"] = ref[0]["full_solve_s"] / r["full_solve_s"]
    batches = []
    if "jax" in args.impls:
        for b in [int(x) for x in args.batches.split(",") if x]:
            r = spawn(["--worker", "batch", "--size", str(b), "--device", args.device], env)
            batches.append(r)
            print(
                f"vmap batch {b}: {r['windows_per_s_batched']:.2f} windows/s batched vs "
                f"{r['windows_per_s_sequential']:.2f} one by one (x{r['speedup']:.2f})",
                flush=True,
            )
    result = dict(machine=machine_info(args.device), iterations=ITERS, rows=rows, batches=batches)
    print("\n| impl | K | tracks | corr/pair | solve 500+200 (s) | ms/iter | compile (s) | peak MB | x faithful |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['impl']} | {r['keyframes']} | {r['tracks']} | {r['corr_per_pair']:.0f} | {r['full_solve_s']:.2f} | "
            f"{1000 * r['s_per_iter']:.1f} | {r['compile_s']:.1f} | {r['peak_mem_mb']:.0f} | "
            f"{r.get('speedup_vs_faithful', float('nan')):.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
