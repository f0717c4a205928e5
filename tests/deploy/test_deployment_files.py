"""The deployment files (docs/deployment.md) say what the code means: every environment
name they set is a real setting with a valid value, the YAML parses, and the image, the
units and the manifests agree on the command, the port and the probes.

No container daemon or cluster runs here; what the image's commands do in a fresh
virtualenv is tests/deploy/test_image_commands.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from apps.market_data_service.config import Settings
from tests.deploy.files import (
    COMPOSE,
    KUBERNETES,
    PROJECT_ROOT,
    PROMETHEUS,
    SYSTEMD,
    compose_environments,
    dockerfile,
    exec_form,
    kubernetes_documents,
    kubernetes_environment,
    stage_environment,
    systemd_environment_files,
    unit_entries,
    yaml_documents,
)

# Read from the class each run: settings added later (LEADER_ELECTION ...) count at once.
SETTING_NAMES = frozenset(name.upper() for name in Settings.model_fields)
# The runtime image sets these for the process itself; nothing else in the final stage.
PROCESS_VARIABLES = frozenset({"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
UNIT = SYSTEMD / "market-data@.service"
SERVE = ["market-data", "serve"]
_COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _runtime_stage() -> int:
    return max(instruction.stage for instruction in dockerfile())


def _unit_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for section, key, value in unit_entries(UNIT):
        if section == "Service" and key == "Environment":
            for assignment in value.split():
                name, _, setting = assignment.strip('"').partition("=")
                env[name] = setting
    return env


def environments() -> dict[str, dict[str, str | None]]:
    """Every place that hands the service its environment: source -> variables."""
    sources: dict[str, dict[str, str | None]] = {}
    runtime = stage_environment(dockerfile(), _runtime_stage())
    sources["Dockerfile"] = {k: v for k, v in runtime.items() if k not in PROCESS_VARIABLES}
    for service, env in compose_environments().items():
        sources[f"docker-compose.yml: {service}"] = dict(env)
    for name, env in systemd_environment_files().items():
        sources[f"deploy/systemd/{name}"] = dict(env)
    sources["deploy/systemd/market-data@.service"] = dict(_unit_environment())
    sources["deploy/kubernetes"] = kubernetes_environment()
    return sources


SOURCES = environments()


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_environment_name_is_a_setting(source: str) -> None:
    unknown = sorted(set(SOURCES[source]) - SETTING_NAMES)
    assert not unknown, f"{source} sets {unknown}, which no Settings field reads"


def _concrete(value: str | None) -> str:
    """A value as the service would see it: compose's ``${X:-default}`` is the default,
    a required ``${X:?...}`` and a value from a Secret or the pod are a placeholder."""
    if value is None:
        return "from-a-secret-or-the-pod"
    return _COMPOSE_VARIABLE.sub(
        lambda m: m.group(3) if m.group(2) == "-" else "placeholder-value", value
    )


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_value_is_valid_for_its_setting(source: str) -> None:
    values: dict[str, Any] = {
        name.lower(): _concrete(value)
        for name, value in SOURCES[source].items()
        # A *_FILE setting names a file on the target host: not here.
        if name in SETTING_NAMES and not name.endswith("_FILE")
    }
    values.setdefault("alpaca_api_key", "placeholder-key")
    values.setdefault("alpaca_secret_key", "placeholder-secret")
    settings = Settings(_env_file=None, **values)  # raises, naming the setting, if wrong
    if "SERVICE_HOST" in SOURCES[source]:
        # Reached over the network (a container, a load balancer): every interface.
        assert settings.service_host == "0.0.0.0"


def test_the_build_stage_sets_only_uv_variables() -> None:
    build = [i for i in dockerfile() if i.stage < _runtime_stage()]
    names = {name for stage in {i.stage for i in build} for name in stage_environment(build, stage)}
    assert names and all(name.startswith("UV_") for name in names), names


def test_the_image_is_slim_locked_non_root_and_serves() -> None:
    instructions = dockerfile()
    runtime = _runtime_stage()
    defaults = dict(i.args.partition("=")[::2] for i in instructions if i.keyword == "ARG")
    bases = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert all("slim" in defaults.get(base.strip("${}"), base) for base in bases), bases
    users = [i.args for i in instructions if i.keyword == "USER" and i.stage == runtime]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    (cmd,) = [i.args for i in instructions if i.keyword == "CMD"]
    assert exec_form(cmd) == SERVE
    (expose,) = [i.args for i in instructions if i.keyword == "EXPOSE"]
    assert expose == stage_environment(instructions, runtime)["PORT"]
    syncs = [i.args for i in instructions if i.keyword == "RUN" and "uv sync" in i.args]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), syncs
    # The uv the Makefile pins reads the lock file here too.
    pinned = re.search(r"^UV_VERSION := (\S+)$", (PROJECT_ROOT / "Makefile").read_text(), re.M)
    assert pinned is not None
    assert any(f"uv=={pinned.group(1)}" in i.args for i in instructions if i.keyword == "RUN")
    (check,) = [i.args for i in instructions if i.keyword == "HEALTHCHECK"]
    probe = exec_form(check.partition("CMD ")[2])
    assert probe[:2] == ["python", "-c"] and "/health/live" in probe[2]
    compile(probe[2], "HEALTHCHECK", "exec")


def test_the_systemd_unit_runs_two_instances_from_shared_and_own_settings() -> None:
    entries = {(s, k): v for s, k, v in unit_entries(UNIT) if k != "EnvironmentFile"}
    command = entries[("Service", "ExecStart")].split()
    assert [Path(command[0]).name, *command[1:]] == SERVE
    assert entries[("Service", "KillSignal")] == "SIGTERM"
    assert entries[("Service", "User")] not in ("root", "0")
    env_files = [v for _, k, v in unit_entries(UNIT) if k == "EnvironmentFile"]
    assert [Path(f).name for f in env_files] == ["market-data.env", "%i.env"]
    instances = {n: e for n, e in systemd_environment_files().items() if n != "market-data.env"}
    assert len(instances) == 2
    assert len({e["PORT"] for e in instances.values()}) == 2
    assert len({e["INSTANCE_ID"] for e in instances.values()}) == 2
    assert systemd_environment_files()["market-data.env"]["LEADER_ELECTION"] == "redis"


def test_the_yaml_files_parse() -> None:
    for path in [COMPOSE, PROMETHEUS, *sorted(KUBERNETES.glob("*.yaml"))]:
        assert yaml_documents(path), path
    (kustomization,) = [d for d in kubernetes_documents() if d["kind"] == "Kustomization"]
    shipped = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == shipped


def test_the_kubernetes_deployment_has_two_replicas_probes_and_a_graceful_stop() -> None:
    (deployment,) = [d for d in kubernetes_documents() if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 10
    assert pod["enableServiceLinks"] is False  # a Service "redis" would set REDIS_PORT
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == SERVE
    (port,) = container["ports"]
    assert str(port["containerPort"]) == kubernetes_environment()["PORT"]
    # Role-aware: a standby that sees a live leader is ready too (docs/deployment.md).
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert kubernetes_environment()["LEADER_ELECTION"] == "redis"


def test_compose_runs_redis_two_electing_instances_and_prometheus_on_loopback() -> None:
    (compose,) = yaml_documents(COMPOSE)
    services = compose["services"]
    instances = compose_environments()
    assert len(instances) == 2 and {"redis", "prometheus"} <= set(services)
    assert {e["LEADER_ELECTION"] for e in instances.values()} == {"redis"}
    assert len({e["INSTANCE_ID"] for e in instances.values()}) == 2
    for service in services.values():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), published
    (prometheus,) = yaml_documents(PROMETHEUS)
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}  # fmt: skip
    assert targets == {f"{name}:{env['PORT']}" for name, env in instances.items()}
    mounts = services["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/prometheus/prometheus.yml:") for m in mounts)
