"""Nothing outlives us: normal exit, SIGKILL, Ctrl-C, and short-lived starter threads."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fixtures.redis import RedisFactory, pid_alive, wait_pid_gone
from tests.libs.redis_embedded.support import ping

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[3]

CHILD_SCRIPT = """
import sys, time
from libs.redis_embedded import EmbeddedRedis
server = EmbeddedRedis().start()
try:
    # Printed inside the try: the test may press Ctrl-C as soon as it reads this line.
    print(server.pid, server.log_path.parent, flush=True)
    if sys.argv[1] != "exit":
        time.sleep(60)
except KeyboardInterrupt:
    # Graceful shutdown: Redis must still be there for our last writes.
    print("running" if server.running else "gone", flush=True)
"""


def _run_child(mode: str) -> tuple[subprocess.Popen[str], int, Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        # Its own group, like a shell job, so the test can "press Ctrl-C" on it alone.
        start_new_session=True,
    )
    assert child.stdout is not None
    pid_text, tmpdir = child.stdout.readline().split()
    return child, int(pid_text), Path(tmpdir)


def test_normal_exit_without_stop_stops_the_server() -> None:
    child, pid, tmpdir = _run_child("exit")
    assert child.wait(timeout=10) == 0
    assert wait_pid_gone(pid)
    assert not tmpdir.exists()


def test_sigkilled_parent_takes_the_server_down() -> None:
    child, pid, tmpdir = _run_child("hang")
    try:
        assert pid_alive(pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_pid_gone(pid)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_ctrl_c_lets_the_app_shut_down_before_redis() -> None:
    child, pid, tmpdir = _run_child("ctrl-c")
    try:
        # A terminal's Ctrl-C signals the whole foreground process group.
        os.killpg(child.pid, signal.SIGINT)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running"
        assert child.wait(timeout=10) == 0
        assert wait_pid_gone(pid)
        assert not tmpdir.exists()
    finally:
        child.kill()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_own_process_group_so_ctrl_c_reaches_only_us(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    assert server.pid is not None
    assert os.getpgid(server.pid) != os.getpgid(0)


def test_server_started_from_a_short_lived_thread_survives_it(
    redis_factory: RedisFactory,
) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* ends; to_thread workers do end.
    server = redis_factory(start=False)
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    time.sleep(0.2)
    assert server.running and ping(server)
