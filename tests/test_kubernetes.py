"""deploy/kubernetes: every manifest is valid for a fixed Kubernetes version, offline (the
schemas ship with kubernetes-validate), and agrees with the product it runs: its configuration
loads, its secrets are provided, its ports and paths are the ones the process serves and writes.
"""

from __future__ import annotations

import copy
import re
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.cli import _parser
from pipeline.config import Settings
from pipeline.config_load import settings_from_mapping
from tests.test_dockerfile import DOCKERFILE, instruction

KUBERNETES_VERSION = "1.35.0"
"""The schemas every manifest is checked against (strict: an unknown field fails)."""

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


ALL = [
    pytest.param(doc, id=f"{path.name}:{doc['kind']}/{doc['metadata']['name']}")
    for path in MANIFESTS
    for doc in documents(path)
]
SERVE = documents(DEPLOY / "serve.yaml")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the network: the schemas must come from the installed package."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests/test_kubernetes.py must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def validate(doc: dict[str, Any]) -> str:
    version: str = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    return version


def one(kind: str) -> dict[str, Any]:
    [doc] = [d for d in SERVE if d["kind"] == kind]
    return doc


def container() -> dict[str, Any]:
    [only] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def toml_text() -> str:
    text: str = one("ConfigMap")["data"]["pipeline.toml"]
    return text


def image_environment() -> dict[str, str]:
    """What the process sees of PIPELINE__* overrides: the image's ENV, then the pod's env."""
    environ = dict(re.findall(r"(PIPELINE__\w+)=(\S+)", instruction("ENV")[0]))
    environ.update({e["name"]: e["value"] for e in container().get("env", []) if "value" in e})
    return environ


def effective_settings() -> Settings:
    return settings_from_mapping(tomllib.loads(toml_text()), environ=image_environment())


def metrics_port() -> int:
    [port] = [p for p in container()["ports"] if p["name"] == "metrics"]
    number: int = port["containerPort"]
    return number


def port_number(port: int | str) -> int:
    """A probe's or a Service's target port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    [named] = [p for p in container()["ports"] if p["name"] == port]
    number: int = named["containerPort"]
    return number


def mounts() -> dict[str, dict[str, Any]]:
    """Mount path -> the volume mounted there (with the mount's readOnly)."""
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    return {
        m["mountPath"]: {**volumes[m["name"]], "readOnly": m.get("readOnly", False)}
        for m in container()["volumeMounts"]
    }


def env_keys(node: object) -> Iterator[str]:
    """Every value of a ``*_env`` key, at any depth of the configuration."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from env_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from env_keys(item)


# The schemas.


def test_there_are_manifests_to_check() -> None:
    assert MANIFESTS
    kinds = {doc["kind"] for path in MANIFESTS for doc in documents(path)}
    assert kinds >= {"ConfigMap", "Secret", "Deployment", "Service"}


@pytest.mark.parametrize("doc", ALL)
def test_every_document_is_valid_for_the_fixed_kubernetes_version(doc: dict[str, Any]) -> None:
    assert validate(doc) == "1.35"


def _misspelled_probe(deployment: dict[str, Any]) -> None:
    spec = deployment["spec"]["template"]["spec"]["containers"][0]
    spec["readinesProbe"] = spec.pop("readinessProbe")


def _misspelled_top_field(deployment: dict[str, Any]) -> None:
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")


def _replicas_as_text(deployment: dict[str, Any]) -> None:
    deployment["spec"]["replicas"] = "two"


def _port_as_text(deployment: dict[str, Any]) -> None:
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9108"


def _run_as_non_root_as_text(deployment: dict[str, Any]) -> None:
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = "yes"


@pytest.mark.parametrize(
    "spoil",
    [
        _misspelled_probe,
        _misspelled_top_field,
        _replicas_as_text,
        _port_as_text,
        _run_as_non_root_as_text,
    ],
)
def test_the_schema_check_fails_on_a_misspelled_field_or_a_wrong_type(spoil: Any) -> None:
    deployment = copy.deepcopy(one("Deployment"))
    validate(deployment)
    spoil(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_the_schema_check_fails_on_an_annotation_that_is_not_text() -> None:
    service = copy.deepcopy(one("Service"))
    service["metadata"]["annotations"]["prometheus.io/port"] = 9108  # unquoted in YAML
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(service)


# Beyond the schemas: the manifests against the product.


def test_two_replicas_a_placeholder_image_and_the_serve_command() -> None:
    assert one("Deployment")["spec"]["replicas"] == 2
    assert container()["image"] == "customer-sync-pipeline:latest"
    args = container()["args"]
    assert args == ["serve", "--config", "/config/pipeline.toml"]
    parsed = _parser().parse_args(args)
    assert (parsed.command, parsed.config) == ("serve", "/config/pipeline.toml")


def test_the_selector_picks_the_pods_and_the_service_selects_them() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("Service")["spec"]["selector"].items() <= labels.items()


def test_probes_hit_healthz_and_readyz_on_the_metrics_port() -> None:
    probes = {name: container()[name]["httpGet"] for name in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    startup = container().get("startupProbe")
    if startup is not None:
        probes["startupProbe"] = startup["httpGet"]
        assert startup["httpGet"]["path"] == "/healthz"
    for probe in probes.values():
        assert port_number(probe["port"]) == metrics_port() == 9108


def test_the_metrics_port_is_the_configured_one_and_the_services() -> None:
    for environ in ({}, image_environment()):
        settings = settings_from_mapping(tomllib.loads(toml_text()), environ=environ)
        host, _, port = settings.metrics.listen.rpartition(":")
        assert host == "0.0.0.0"
        assert int(port) == metrics_port()
    service = one("Service")
    [exposed] = service["spec"]["ports"]
    assert exposed["name"] == "metrics"
    assert exposed["port"] == metrics_port()
    assert port_number(exposed["targetPort"]) == metrics_port()
    annotations = service["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert annotations["prometheus.io/port"] == str(metrics_port())
        assert annotations["prometheus.io/path"] == "/metrics"


def test_the_container_runs_as_the_images_non_root_user_on_a_read_only_root() -> None:
    uid = int(re.search(r"useradd [^\n]*--uid (\d+)", DOCKERFILE)[1])  # type: ignore[index]
    gid = int(re.search(r"groupadd [^\n]*--gid (\d+)", DOCKERFILE)[1])  # type: ignore[index]
    pod = one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    own = container()["securityContext"]
    for context in (pod, own):
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert uid != 0
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}


def test_the_configuration_decodes_with_the_products_loader_and_names_postgresql() -> None:
    settings = settings_from_mapping(tomllib.loads(toml_text()), environ={})
    assert settings.state.url is not None
    assert settings.state.url.startswith("postgresql://")
    assert settings.state.password_env
    assert settings.targets.sections  # at least one target is on


def test_the_configuration_is_mounted_read_only_where_the_args_read_it() -> None:
    config = PurePosixPath(container()["args"][-1])
    volume = mounts()[str(config.parent)]
    assert volume["readOnly"] is True
    assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert config.name in one("ConfigMap")["data"]


def test_every_secret_the_configuration_names_is_a_key_of_the_secret() -> None:
    secret = one("Secret")
    assert secret["type"] == "Opaque"
    named = set(env_keys(tomllib.loads(toml_text())))
    assert {"PIPELINE_DB_PASSWORD", "MAN_TOKEN"} <= named
    assert named <= secret["stringData"].keys()
    sources = container()["envFrom"]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources


def test_the_secret_holds_placeholders_only() -> None:
    secret = one("Secret")
    assert "data" not in secret
    assert set(secret["stringData"].values()) == {"CHANGE-ME"}


def test_where_the_process_writes_is_an_empty_dir() -> None:
    """The seen-set goes beside [state] path, as the image's own ENV sets it (which wins over
    the file): that directory, and /tmp, must be writable under a read-only root."""
    settings = effective_settings()
    assert settings.state.url is not None
    seen_set = str(PurePosixPath(settings.state.path).parent)
    assert settings.state.path == tomllib.loads(toml_text())["state"]["path"]
    for path in (seen_set, "/tmp"):
        volume = mounts()[path]
        assert "emptyDir" in volume
        assert volume["readOnly"] is False


def test_termination_grace_outlasts_the_serve_grace_period() -> None:
    settings = effective_settings()
    pod = one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > settings.serve.grace_seconds


def test_memory_is_requested_and_limited_above_the_measured_peak() -> None:
    resources = container()["resources"]

    def mebibytes(quantity: str) -> int:
        assert quantity.endswith("Mi")
        return int(quantity.removesuffix("Mi"))

    request = mebibytes(resources["requests"]["memory"])
    limit = mebibytes(resources["limits"]["memory"])
    assert 120 < request <= limit <= 512  # peak RSS 120 MB at a million (README, Performance)
    assert "cpu" in resources["requests"]
