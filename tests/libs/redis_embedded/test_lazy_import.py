"""``libs.redis_client`` loads the embedded server (ctypes, atexit) only when asked for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[3]

# A fresh interpreter: in this one, the fixtures have long imported everything.
PROBE_SCRIPT = """
import json, sys
import libs.redis_client
before = sorted(m for m in sys.modules if m == "ctypes" or m.startswith("libs.redis_embedded"))
from libs.redis_client import EmbeddedRedis, find_redis_server
import libs.redis_embedded
print(json.dumps({
    "before": before,
    "same_class": EmbeddedRedis is libs.redis_embedded.EmbeddedRedis,
    "same_function": find_redis_server is libs.redis_embedded.find_redis_server,
    "in_all": sorted({"EmbeddedRedis", "find_redis_server"} & set(libs.redis_client.__all__)),
    "unknown_is_missing": not hasattr(libs.redis_client, "NoSuchName"),
}))
"""


def test_importing_redis_client_does_not_load_the_embedded_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    probe = json.loads(result.stdout)
    assert probe["before"] == []
    assert probe["same_class"] and probe["same_function"]
    assert probe["in_all"] == ["EmbeddedRedis", "find_redis_server"]
    assert probe["unknown_is_missing"]
