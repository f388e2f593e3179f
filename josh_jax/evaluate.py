"""``python -m josh_jax.evaluate RESULTS.npz GROUND_TRUTH.npz [--json OUT] [--fps 30]``.

Prints the world-frame metrics of :mod:`josh_jax.eval.metrics` (both files in the
``results.npz`` layout; ``josh_jax.synthetic.worlds`` writes such a ground truth).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from josh_jax.errors import JoshError
from josh_jax.eval.metrics import evaluate

from .results import Results


def main(argv=None) -> int:
    from josh_jax._cli.atomic import check_file_outputs, write_text_atomic
    from josh_jax._cli.checks import OneLineParser, error_line, positive_float

    ap = OneLineParser(prog="python -m josh_jax.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("ground_truth", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--fps", type=positive_float, default=30.0)
    ap.add_argument("--overwrite", action="store_true", help="replace --json if it exists (never an input)")
    args = ap.parse_args(argv)
    try:
        if args.json:
            check_file_outputs([args.json], [args.results, args.ground_truth], args.overwrite)
        m = evaluate(Results.load(args.results), Results.load(args.ground_truth), args.fps)
    except (JoshError, FileNotFoundError, ValueError, IndexError, KeyError) as exc:
        print(error_line(exc), file=sys.stderr)
        return 2
    units = {
        "w_mpjpe100": "mm",
        "wa_mpjpe100": "mm",
        "rte": "%",
        "jitter": "10 m/s^3",
        "foot_sliding": "mm",
        "camera_ate": "m",
    }
    for k, u in units.items():
        print(f"{k:>12}: {m[k]:9.3f} {u}")
    if args.json:
        try:
            write_text_atomic(args.json, json.dumps(m, indent=1))
        except OSError as exc:
            print(error_line(exc), file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
