"""The Dockerfile's commands, replayed without a container daemon: its build stage's
``COPY`` and ``uv sync`` lines into a fresh build context and virtualenv, then its ``CMD``
with the runtime stage's environment, against the simulator and a real Redis.

What differs from ``docker build``: the interpreter (this machine's, not the image's),
uv reads its cache offline (``make setup`` filled it from the same lock file), and the
service binds loopback (tests listen on 127.0.0.1) instead of the image's 0.0.0.0.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

import httpx
import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.deploy.files import PROJECT_ROOT, Instruction, dockerfile, exec_form, stage_environment
from tests.fixtures.service import free_port
from tests.helpers import eventually

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
# The image's interpreter path in --python becomes this machine's.
_INTERPRETER = os.path.realpath(sys.executable)


def _uv() -> str:
    found = PROJECT_ROOT / ".uv" / "bin" / "uv"  # the Makefile's pinned uv
    uv = str(found) if found.exists() else shutil.which("uv")
    assert uv, "no uv: run `make setup` first"
    return uv


async def _run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"{shlex.join(command)} failed:\n{output.decode()}"


async def _replay_build(stage: list[Instruction], context: Path, venv: Path) -> None:
    """The build stage's COPY and RUN uv lines, in order, in ``context`` (its /app)."""
    env = {
        **os.environ,
        **stage_environment(stage, stage[0].stage),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_OFFLINE": "1",
    }
    for instruction in stage:
        if instruction.keyword == "COPY":
            *sources, _ = shlex.split(instruction.args)
            for source in sources:
                origin, target = PROJECT_ROOT / source, context / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=_IGNORED)
                else:
                    shutil.copy2(origin, target)
        elif instruction.keyword == "RUN" and "uv sync" in instruction.args:
            words = shlex.split(instruction.args)
            if "--python" in words:
                words[words.index("--python") + 1] = _INTERPRETER
            assert words[:2] == ["uv", "sync"], words
            await _run([_uv(), *words[1:]], context, env)


@pytest.mark.timeout(120)
async def test_the_images_install_and_command_work_in_a_fresh_virtualenv(
    tmp_path: Path, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    instructions = dockerfile()
    runtime = max(i.stage for i in instructions)
    context, venv, workdir = tmp_path / "context", tmp_path / "venv", tmp_path / "app"
    for directory in (context, workdir):
        directory.mkdir()
    await _replay_build([i for i in instructions if i.stage < runtime], context, venv)

    image_env = stage_environment(instructions, runtime)
    port = free_port()
    env = {
        **image_env,
        "PATH": image_env["PATH"]
        .replace("/app/.venv", str(venv))
        .replace("$PATH", os.environ["PATH"]),
        "HOME": str(tmp_path),
        "SERVICE_HOST": "127.0.0.1",
        "PORT": str(port),
        "ALPACA_API_KEY": simulator.config.api_key,
        "ALPACA_SECRET_KEY": simulator.config.secret_key,
        "ALPACA_DATA_URL": simulator.url(),
        "REDIS_HOST": redis_params.host,
        "REDIS_PORT": str(redis_params.port),
    }
    (cmd,) = [i.args for i in instructions if i.keyword == "CMD"]
    command = exec_form(cmd)
    # Found through the image's PATH: the fresh venv's script, not this test's.
    assert shutil.which(command[0], path=env["PATH"]) == str(venv / "bin" / command[0])
    log = tmp_path / "service.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=workdir, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
            health: dict[str, object] = {}

            async def connected() -> bool:
                try:
                    health.update((await http.get("/health")).json())
                except httpx.HTTPError:
                    return False
                return health.get("websocket_connected") is True

            async def poll() -> None:
                while not await connected():
                    assert process.returncode is None, log.read_text()
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(poll(), 30)
            assert (await http.get("/health/live")).status_code == 200
        # The image's STOPSIGNAL: a graceful stop that exits 0, as orchestrators expect.
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0, log.read_text()
        await eventually(lambda: simulator.open_connections == 0, what="socket closed")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
