"""The hot path's stage costs, measured the way ``apps.bench.hotpath`` does."""

from __future__ import annotations

import re

import pytest

from apps.bench.hotpath import frames, main
from libs.market_data.stream.protocol import decode_frame


@pytest.mark.timeout(60)
def test_hotpath_prints_each_stages_cpu_per_quote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--frames", "3", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-4:] == ["decode", "process", "pack", "together"]
    labels = [
        f"{case} ({path})"
        for case in ("100 symbols", "whole market")
        for path in ("python", "native")
    ]
    for line, label in zip(lines[1:], labels, strict=True):
        figures = r" +([0-9.]+)" * 4
        match = re.fullmatch(re.escape(label) + figures, line)
        assert match is not None, line
        assert all(float(figure) > 0 for figure in match.groups())


@pytest.mark.timeout(60)
def test_the_frames_are_realistic_alpaca_quotes_that_all_decode() -> None:
    data = frames(["AAPL", "MSFT"], 2)
    assert all(b'"c":' in frame and b'"z":' in frame for frame in data)
    decoded = [decode_frame(frame) for frame in data]
    assert [len(frame.quotes) for frame in decoded] == [200, 200]
    assert not any(frame.malformed for frame in decoded)
    # Nanosecond timestamps, later frame after earlier one.
    assert decoded[0].quotes[-1].t < decoded[1].quotes[0].t
