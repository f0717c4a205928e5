"""The cost of connection fencing: ``throughput`` and ``throughput-fenced`` alternated
``--pairs`` times in one run, and the ratio of their throughput (docs/leadership.md).

Run: ``python -m apps.bench.fencing_ratio [--pairs N] [--duration S]``. Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    import uvloop

    from apps.bench.runner import BenchOptions, _bench

    parser = argparse.ArgumentParser(prog="fencing-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="unfenced/fenced pairs (3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    args = parser.parse_args(argv)
    options = BenchOptions(duration=args.duration, only=("throughput", "throughput-fenced"))
    ratios: list[float] = []
    for pair in range(args.pairs):
        plain, fenced = uvloop.run(_bench(options))
        ratio = fenced.quotes_per_s / plain.quotes_per_s
        ratios.append(ratio)
        print(
            f"pair {pair + 1}: unfenced {plain.quotes_per_s:,.0f}/s, "
            f"fenced {fenced.quotes_per_s:,.0f}/s, ratio {ratio:.3f}",
            flush=True,
        )
    print(f"fenced/unfenced throughput: median ratio {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}) over {args.pairs} pairs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
