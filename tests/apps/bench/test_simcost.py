"""The simulator's own cost at full speed, measured the way ``apps.bench.simcost`` does."""

from __future__ import annotations

import re

import pytest

from apps.bench.simcost import main


@pytest.mark.timeout(60)
def test_simcost_prints_the_simulators_cpu_per_quote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--duration", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, label in zip(lines, ("100 symbols", "*"), strict=True):
        match = re.fullmatch(
            rf"simulator, {re.escape(label)} +batch 200: +([0-9,]+) quotes/s sent, "
            r"([0-9.]+) µs CPU per quote",
            line,
        )
        assert match is not None, line
        assert int(match[1].replace(",", "")) > 0
        assert float(match[2]) > 0
