"""Reading the deployment files the way their tools do, as far as the tests need: the
Dockerfile's instructions by stage, systemd's ``Key=Value`` lines and environment files,
the YAML documents, and the environment each file hands the service."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

__all__ = [
    "COMPOSE",
    "DOCKERFILE",
    "KUBERNETES",
    "PROJECT_ROOT",
    "PROMETHEUS",
    "SYSTEMD",
    "Instruction",
    "compose_environments",
    "dockerfile",
    "exec_form",
    "kubernetes_documents",
    "kubernetes_environment",
    "stage_environment",
    "systemd_environment_files",
    "unit_entries",
    "yaml_documents",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SYSTEMD = PROJECT_ROOT / "deploy" / "systemd"
KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"
PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"


@dataclass(frozen=True)
class Instruction:
    stage: int  # 0 for the first FROM's stage
    keyword: str  # upper case: RUN, ENV, CMD ...
    args: str  # the rest, continuation lines joined


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions, with ``\\`` continuations joined and comment lines dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, even inside a continuation
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    instructions: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(max(stage, 0), keyword, args.strip()))
    return instructions


def stage_environment(instructions: list[Instruction], stage: int) -> dict[str, str]:
    """``ENV`` of one stage, in both forms (``ENV A=1 B=2`` and the old ``ENV A 1``)."""
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.stage != stage or instruction.keyword != "ENV":
            continue
        tokens = shlex.split(instruction.args)
        if "=" not in tokens[0]:
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            name, _, value = token.partition("=")
            env[name] = value
    return env


def exec_form(args: str) -> list[str]:
    """A ``CMD``/``ENTRYPOINT`` in exec (JSON array) form; fails on the shell form."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def unit_entries(path: Path) -> Iterator[tuple[str, str, str]]:
    """``(section, key, value)`` of a systemd unit, repeated keys kept in order."""
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a Key=Value line: {line!r}"
        yield section, key.strip(), value.strip()


def systemd_environment_files() -> dict[str, dict[str, str]]:
    """The example environment files next to the units: file name -> variables."""
    files: dict[str, dict[str, str]] = {}
    for path in sorted(SYSTEMD.glob("*.env")):
        env: dict[str, str] = {}
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not a NAME=value line: {line!r}"
            env[name.strip()] = value.strip()
        files[path.name] = env
    return files


def yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file (PyYAML, which uvicorn[standard] brings)."""
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def compose_environments() -> dict[str, dict[str, str]]:
    """The services built from our Dockerfile: service name -> its environment."""
    (compose,) = yaml_documents(COMPOSE)
    environments: dict[str, dict[str, str]] = {}
    for name, service in compose["services"].items():
        if "build" not in service:
            continue  # Redis, Prometheus: not ours
        env = service.get("environment", {})
        if isinstance(env, list):  # the NAME=value list form
            env = dict(item.partition("=")[::2] for item in env)
        environments[name] = {str(k): str(v) for k, v in env.items()}
    return environments


def kubernetes_documents() -> list[dict[str, Any]]:
    """Every manifest in deploy/kubernetes, kustomization included."""
    return [doc for path in sorted(KUBERNETES.glob("*.yaml")) for doc in yaml_documents(path)]


def kubernetes_environment() -> dict[str, str | None]:
    """What the Deployment's container gets: its ``env`` (``None`` for values taken from
    a Secret or the pod) and the data of the ConfigMaps it reads with ``envFrom``."""
    docs = kubernetes_documents()
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    (deployment,) = (d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env
