#!/usr/bin/env bash
# The GPU suite in one command (about 5-8 minutes on one GPU, plus about 4 for the last row's
# compiles): josh_jax Adam and Gauss-Newton vs the vectorized PyTorch flavour on the default
# 21-keyframe window, solve_batch of 1 / 8 / 64 windows, then the differentiable solve's forward and
# forward + backward (--skip-diff leaves it out), compile time apart, the device name; one JSON
# (written after the batches and again at the end).
#   benchmarks/gpu_suite.sh [OUT.json] [--tiny]     (--tiny: seconds on a CPU; the tests run it so)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_suite.json}"
shift || true
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())" >&2
exec "$PY" benchmarks/gpu_suite.py --out "$OUT" "$@"
