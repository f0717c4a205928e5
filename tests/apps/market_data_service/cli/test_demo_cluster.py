"""``market-data demo --cluster --duration N`` as a user runs it: a private 3-primary Redis
Cluster, live prices and P&L printed, exit 0, no ``redis-server`` left behind
(docs/cluster.md)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.apps.market_data_service.cli.running import MARKET_DATA, clean_environment
from tests.fixtures.redis import closed_port, wait_pid_gone

SYMBOLS = ("AAPL", "MSFT", "GOOGL")
# One board line a second on a pipe: ``AAPL 433.44  MSFT 290.895  GOOGL 316.975   (21 events)``.
BOARD = re.compile(r"^AAPL (\d+\.\d+)  MSFT (\d+\.\d+)  GOOGL (\d+\.\d+)\s+\((\d+) events\)", re.M)
_START_S = 30.0  # safety nets for a loaded machine, not assertions


def _redis_children(pid: int) -> set[int]:
    """The ``redis-server`` processes whose parent is ``pid`` (from /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid and b"redis-server" in command:
            found.add(int(entry.name))
    return found


@pytest.mark.timeout(90)
def test_demo_on_a_cluster_prints_live_prices_and_leaves_nothing_behind(tmp_path: Path) -> None:
    port = closed_port()
    log = tmp_path / "demo.log"
    args = ["demo", "--cluster", "--duration", "5", "--port", str(port)]
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [MARKET_DATA, *args],
            env=clean_environment(),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + _START_S
        while "health: http://" not in log.read_text(errors="replace"):
            assert demo.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        nodes = _redis_children(demo.pid)
        code = demo.wait(timeout=_START_S)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
    output = log.read_text(errors="replace")
    assert code == 0, output
    assert len(nodes) == 3, f"three cluster primaries expected, found {nodes}\n{output}"
    assert re.search(r"redis cluster 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+", output)
    boards = BOARD.findall(output)
    # Live: a price for every symbol, and their events (SSUBSCRIBE on two shards) kept
    # coming while the board was shown.
    assert len(boards) >= 2, output
    events = [int(line[3]) for line in boards]
    assert events[-1] > events[0], output
    assert re.search(r"P&L -?\d+\.\d\d", output), output
    assert "Traceback" not in output
    left = {pid for pid in nodes if not wait_pid_gone(pid, timeout=5)}
    assert not left, f"redis-server still running after the demo: {left}"
