"""The Dockerfile cannot be built here: check that what it runs matches the CLI and config."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.cli import _parser
from pipeline.config_load import settings_from_mapping

DOCKERFILE = (Path(__file__).parent.parent / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.MULTILINE)]


def test_build_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    assert len(instruction("FROM")) == 2
    assert instruction("USER") == ["pipeline"]
    assert "useradd" in DOCKERFILE and "--uid 10001 --gid 10001" in DOCKERFILE
    assert "groupadd --gid 10001 pipeline" in DOCKERFILE


def test_default_command_is_serve_and_the_cli_accepts_it() -> None:
    entrypoint = json.loads(instruction("ENTRYPOINT")[0])
    command = json.loads(instruction("CMD")[-1])
    assert entrypoint == ["pipeline"]
    assert command[0] == "serve"
    args = _parser().parse_args(command)
    assert (args.command, args.config) == ("serve", "/config/pipeline.toml")


def test_state_lives_on_the_volume_and_healthcheck_hits_the_metrics_port() -> None:
    env = dict(re.findall(r"(PIPELINE__\w+)=(\S+)", instruction("ENV")[0]))
    volume = json.loads(instruction("VOLUME")[0])
    settings = settings_from_mapping({"source": {"url": "http://x"}}, environ=env)
    assert Path(settings.state.path).parent == Path(volume[0])
    host, _, port = settings.metrics.listen.rpartition(":")
    assert host == "0.0.0.0"
    health = instruction("HEALTHCHECK")[0]
    assert f"127.0.0.1:{port}/healthz" in health
    assert instruction("EXPOSE") == [port]
