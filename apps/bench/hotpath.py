"""The service's hot path alone, in this process: CPU per quote of each stage.

``market-data bench`` measures the whole service; this splits its per-quote work into the
three stages that run for every frame (docs/architecture.md, "The data path"): decoding
the frame (``stream/protocol.py``), validating and encoding (``pipeline/processor.py``)
and packing Redis commands (``pipeline/packing.py``). The frames are the simulator's own
(``JsonEncoder``: 200 quotes with ``c``, ``z`` and nanosecond ``t``), for 100 symbols and
for the whole market (``*`` on the 10,000-symbol Zipf-skewed universe). Each figure is the
best of ``--rounds`` passes over the same frames (a fresh processor each pass), in CPU
time: the quietest pass is the one least disturbed by the machine's other work.

Run: ``python -m apps.bench.hotpath [--frames N] [--rounds N]``. Prints figures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from apps.simulator.encoding import JsonEncoder
from apps.simulator.market import build_universe
from apps.simulator.quotes import QuoteGenerator
from libs.market_data import native
from libs.market_data.pipeline.packing import FramePacker
from libs.market_data.pipeline.processor import PriceUpdate, QuoteProcessor
from libs.market_data.stream.protocol import DecodedFrame, decode_stock_frame

__all__ = ["StageCosts", "main", "measure"]

_BATCH: Final = 200
_WILDCARD: Final = frozenset({"*"})
_START_NS: Final = 1_795_000_000_000_000_000


@dataclass(frozen=True)
class StageCosts:
    """µs of CPU per quote of each stage, and of the three run back to back."""

    label: str
    decode: float
    process: float
    pack: float
    together: float


def frames(symbols: Sequence[str], count: int, seed: int = 7) -> list[bytes]:
    """``count`` frames of 200 quotes walking ``symbols``, 1 ms apart."""
    generator, encoder = QuoteGenerator(seed), JsonEncoder()
    out: list[bytes] = []
    cursor = 0
    for index in range(count):
        ticks, cursor = generator.next_ticks(symbols, cursor, _BATCH)
        out.append(encoder.encode_ticks(ticks, _START_NS + index * 1_000_000))
    return out


def _best(rounds: int, quotes: int, run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / quotes * 1e6


def _run(processor: QuoteProcessor, frame: DecodedFrame) -> list[PriceUpdate]:
    # What AlpacaMarketDataStream does with a frame's quotes.
    if frame.block is not None:
        return processor.process_block(frame.block, _WILDCARD)
    return processor.process(frame.quotes, _WILDCARD)


def measure(label: str, data: list[bytes], rounds: int) -> StageCosts:
    """The stages on ``data`` as the service's reader runs them: the native path first
    when it is on in this process (``native.use``), else the Python path alone."""
    decode = decode_stock_frame
    decoded = [decode(frame) for frame in data]
    if native.available() and any(frame.block is None for frame in decoded):
        raise RuntimeError("a simulator frame left the native path")
    quotes = sum(len(f.block) if f.block is not None else len(f.quotes) for f in decoded)
    updates: list[list[PriceUpdate]] = []

    def process() -> None:
        processor = QuoteProcessor("bench")
        updates[:] = [_run(processor, frame) for frame in decoded]

    # One packer for every round, as the service keeps one: its name cache is warm after
    # the first round. A new one per round measured building 10,000 names, not packing.
    packer = FramePacker(300)
    latest: dict[str, PriceUpdate] = {}

    def pack() -> None:
        for batch in updates:
            packer.pack(batch, latest)

    def together() -> None:
        processor = QuoteProcessor("bench")
        for frame in data:
            packer.pack(_run(processor, decode(frame)), latest)

    return StageCosts(
        label,
        decode=_best(rounds, quotes, lambda: [decode(frame) for frame in data]),
        process=_best(rounds, quotes, process),
        pack=_best(rounds, quotes, pack),
        together=_best(rounds, quotes, together),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.bench.hotpath")
    parser.add_argument("--frames", type=int, default=300, help="frames of 200 quotes per case")
    parser.add_argument("--rounds", type=int, default=7, help="passes; the best is shown")
    args = parser.parse_args(argv)
    cases = [
        ("100 symbols", [f"SYM{i:03d}" for i in range(100)]),
        ("whole market", list(build_universe(10_000, 1.0, seed=7))),
    ]
    paths = [("python", False)] + ([("native", True)] if native.available() else [])
    print(f"{'µs CPU per quote':<22}{'decode':>9}{'process':>9}{'pack':>9}{'together':>10}")
    was_on = native.available()
    for label, symbols in cases:
        data = frames(symbols, args.frames)
        for path, native_path in paths:
            native.use(native_path)  # decoding, processing and packing alike
            try:
                costs = measure(label, data, args.rounds)
            finally:
                native.use(was_on)
            print(f"{f'{label} ({path})':<22}{costs.decode:>9.2f}{costs.process:>9.2f}"
                  f"{costs.pack:>9.2f}{costs.together:>10.2f}")  # fmt: skip
    if not native.available():
        print("native path: not built (make setup) or turned off (MARKET_DATA_NATIVE=0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
