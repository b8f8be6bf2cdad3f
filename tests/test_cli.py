"""The command line, run as a user runs it: subprocesses, real exit codes, emulators served by
``pipeline emulate``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config_load import settings_from_mapping
from pipeline.stack import config_toml
from tests.kit.feeds import write_feed
from tests.processes import Emulation, emulate, free_port_range, get_json

PYTHON = sys.executable


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulation]:
    with emulate(1000, tmp_path_factory.mktemp("emulate")) as urls:
        yield urls


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "MAN_TOKEN": "demo-man-token",
        "SYNCBATCH_TOKEN": "demo-syncbatch-token",
        **(env or {}),
    }
    return subprocess.run(
        [PYTHON, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def test_run_exits_3_with_dead_letters_and_writes_the_report(
    emulators: dict[str, str], tmp_path: Path
) -> None:
    config = write_feed(tmp_path / "c.toml", emulators, tmp_path / "s.sqlite3")
    report_path = tmp_path / "report.json"

    done = run_cli("run", "--config", str(config), "--report", str(report_path))

    assert done.returncode == 3, done.stderr
    report = json.loads(report_path.read_text())
    target = report["targets"]["syncbatch"]
    assert report["source"]["records"] == 1000
    assert target["dead_lettered"] == report["source"]["rejected"] > 0
    assert target["created"] + target["unchanged"] + target["dead_lettered"] == 1000
    assert "syncbatch" in done.stderr


def test_dry_run_writes_nothing(emulators: dict[str, str], tmp_path: Path) -> None:
    config = write_feed(tmp_path / "c.toml", emulators, tmp_path / "fresh.sqlite3")
    report_path = tmp_path / "report.json"

    done = run_cli("run", "--config", str(config), "--dry-run", "--report", str(report_path))

    assert done.returncode == 3, done.stderr
    target = json.loads(report_path.read_text())["targets"]["syncbatch"]
    assert target["requests"] == 0
    assert target["would_send"] > 0
    assert "nothing was written" in done.stderr


def test_unreachable_source_aborts_with_exit_1(tmp_path: Path) -> None:
    port = free_port_range()
    urls = {"source": f"http://127.0.0.1:{port}/x", "syncbatch": f"http://127.0.0.1:{port + 1}"}
    retry = {"max_attempts": 2, "initial_seconds": 0.01}
    config = write_feed(tmp_path / "c.toml", urls, tmp_path / "s.sqlite3", source={"retry": retry})
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 1
    assert f"127.0.0.1:{port}/x" in done.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("bogus = 1", "targets.syncbatch"),
        ("max_in_flight = 0", "targets.syncbatch.max_in_flight"),
        ("rate_per_second = 'many'", "targets.syncbatch.rate_per_second"),
    ],
)
def test_bad_configuration_exits_2_naming_the_key(
    tmp_path: Path, extra: str, expected: str
) -> None:
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, tmp_path / "s.sqlite3", extra=extra)
    for command in (["check-config", str(config)], ["run", "--config", str(config)]):
        done = run_cli(*command)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr


def test_missing_secret_exits_2_naming_the_variable(tmp_path: Path) -> None:
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, tmp_path / "s.sqlite3")
    env = {k: v for k, v in os.environ.items() if k != "SYNCBATCH_TOKEN"}
    done = subprocess.run(
        [PYTHON, "-m", "pipeline", "check-config", str(config)],
        capture_output=True,
        text=True,
        env={**env, "MAN_TOKEN": "x"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "SYNCBATCH_TOKEN" in done.stderr


UNREACHABLE = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}


@pytest.mark.parametrize(
    ("urls", "extra", "env", "key"),
    [
        ({"source": "http://man-user:s3cret@127.0.0.1:1/x"}, "", {}, "source.url"),
        ({"source": "127.0.0.1:1/x"}, "", {}, "source.url"),
        ({"syncbatch": "http://127.0.0.1:2/sync/customers/batch"}, "", {}, "targets.syncbatch.url"),
        ({}, '[metrics]\nlisten = "9108"', {}, "metrics.listen"),
        ({}, '[metrics]\nlisten = "127.0.0.1:70000"', {}, "metrics.listen"),
        ({}, "", {"MAN_TOKEN": "  "}, "source.token_env"),
        ({}, "", {"MAN_TOKEN": "s3cret\nX-Other: y"}, "source.token_env"),
        ({}, "", {"SYNCBATCH_TOKEN": "s3cret\n\n"}, "targets.syncbatch.token_env"),
    ],
    ids=[
        "userinfo",
        "no-scheme",
        "endpoint-path",
        "listen-no-host",
        "listen-port-range",
        "blank-secret",
        "secret-line-break",
        "secret-two-newlines",
    ],
)
def test_configuration_that_cannot_work_is_one_line_and_exit_2(
    tmp_path: Path, urls: dict[str, str], extra: str, env: dict[str, str], key: str
) -> None:
    config = write_feed(
        tmp_path / "c.toml", {**UNREACHABLE, **urls}, tmp_path / "s.sqlite3", extra=extra
    )
    for command in (["check-config", str(config)], ["run", "--config", str(config)]):
        done = run_cli(*command, env=env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"configuration error: {key}"), done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "s3cret" not in done.stdout + done.stderr


def test_secrets_mounted_from_files_keep_no_trailing_newline(
    emulators: dict[str, str], tmp_path: Path
) -> None:
    config = write_feed(tmp_path / "c.toml", emulators, tmp_path / "s.sqlite3")
    env = {"MAN_TOKEN": "demo-man-token\n", "SYNCBATCH_TOKEN": "demo-syncbatch-token\r\n"}

    done = run_cli("run", "--config", str(config), "--dry-run", env=env)

    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "nothing was written" in done.stderr


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, tmp_path / "s.sqlite3")
    done = run_cli("check-config", str(config))
    assert done.returncode == 0, done.stderr
    assert "targets: syncbatch" in done.stdout
    assert done.stdout.splitlines()[-1] == (
        "syncbatch ids: accounts allocated from [1, 1000000]; "
        "organisations allocated from [1, 1000]"
    )


@pytest.mark.parametrize(
    ("keys", "line"),
    [
        (
            'account_ids = "customer_id"\ncustomer_id_prefix = "C"\naccount_id_offset = 500\n'
            "[targets.syncbatch.organisation_ids]\nRetail = 1\nOnline = 2",
            "syncbatch ids: accounts 500 + the number in customer_id after 'C'; "
            "organisations 2 named",
        ),
        (
            'account_ids = "customer_id"\norganisation_id_range = [5, 9]',
            "syncbatch ids: accounts the number in customer_id; organisations allocated from "
            "[5, 9]",
        ),
    ],
)
def test_check_config_says_where_sync_batch_ids_come_from(
    tmp_path: Path, keys: str, line: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[source]\nurl = "http://127.0.0.1:1/c"\n[targets.syncbatch]\nurl = "http://127.0.0.1:2"\n'
        f'profile_url = "https://shop.example.com/u/{{customer_id}}"\n{keys}\n'
    )
    done = run_cli("check-config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == line


def test_check_config_without_sync_batch_ids_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[source]\nurl = "http://127.0.0.1:1/c"\n[targets.syncbatch]\nurl = "http://127.0.0.1:2"\n'
        'profile_url = "https://shop.example.com/u/{customer_id}"\n'
    )
    done = run_cli("check-config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith("configuration error: targets.syncbatch.account_ids")
    assert "Traceback" not in done.stderr


def test_check_config_prints_the_effective_source_shape(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        """
[source]
url = "http://127.0.0.1:1/customers"
paging = "page"
first_page = 1
limit_param = "pageSize"
data_path = "result.items"
total_path = ""
address_pick = "shipping"
[source.fields]
customer_id = "customerId"
address = "addresses"
[source.address_fields]
zipCode = "postalCode"
"""
    )
    done = run_cli("check-config", str(config))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == (
        "source: GET http://127.0.0.1:1/customers?page=<page from 1>&pageSize=100 "
        "(page-number paging, always from the first page, 4 pages in flight)"
    )
    assert lines[2] == (
        '  records at "result.items" of an object answer, or a bare array; total at ignored'
    )
    assert lines[3] == (
        "  fields: customer_id = 'customerId', address = 'addresses', "
        "address.zipCode = 'postalCode'"
    )
    assert lines[4] == "  address: one object, or from a list the shipping one"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('paging = "page"', "source.first_page"),
        ('limit_param = "offset"', "source"),
        ('data_path = "a..b"', "source.data_path"),
        ('[source.fields]\nemail = ""', "source.fields.email"),
        ('[source.fields]\nemail = "mail"\nrole = "mail"', "source.fields"),
    ],
)
def test_a_bad_source_shape_exits_2_naming_the_key(tmp_path: Path, extra: str, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[source]\nurl = "http://127.0.0.1:1/c"\n{extra}\n')
    done = run_cli("check-config", str(config))
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith(f"configuration error: {key}"), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_target_exits_2(emulators: dict[str, str], tmp_path: Path) -> None:
    config = write_feed(tmp_path / "c.toml", emulators, tmp_path / "s.sqlite3")
    done = run_cli("run", "--config", str(config), "--target", "emporix")
    assert done.returncode == 2
    assert "emporix" in done.stderr


def test_demo_twice_reports_everything_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "demo.sqlite3")
    first_report = tmp_path / "first.json"
    second_report = tmp_path / "second.json"

    assert (
        main(["demo", "--customers", "600", "--state", state, "--report", str(first_report)]) == 0
    )
    assert (
        main(["demo", "--customers", "600", "--state", state, "--report", str(second_report)]) == 0
    )

    first = json.loads(first_report.read_text())["targets"]["syncbatch"]
    second = json.loads(second_report.read_text())["targets"]["syncbatch"]
    assert first["created"] > 0
    assert second["created"] == second["updated"] == second["requests"] == 0
    assert second["unchanged"] == first["created"]
    # Norce refuses the "Ghost Unit" customers again: nothing else was sent.
    assert "nothing written: the " in capsys.readouterr().err


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot create files in (as root, a sysfs one)."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        for candidate in (directory, Path("/sys")):
            try:
                (candidate / "probe").touch()
            except OSError:
                yield candidate
                return
            (candidate / "probe").unlink()
        pytest.skip("no directory this process cannot write to")
    finally:
        directory.chmod(0o755)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("file/state.sqlite3", "{tmp}/file is a file, not a directory"),
        ("file/sub/state.sqlite3", "{tmp}/file is a file, not a directory"),
        ("dir", "cannot open {tmp}/dir: Is a directory"),
        ("{ro}/state.sqlite3", "cannot create {ro}/state.sqlite3.lock: "),
        ("{ro}/sub/state.sqlite3", "cannot create directory {ro}/sub: "),
    ],
    ids=["parent-is-a-file", "grandparent-is-a-file", "a-directory", "unwritable", "uncreatable"],
)
@pytest.mark.parametrize("command", [["run"], ["serve"], ["dlq", "replay"]], ids=" ".join)
def test_a_state_path_that_cannot_be_used_exits_2_naming_it(
    tmp_path: Path, unwritable: Path, where: str, expected: str, command: list[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "dir").mkdir()
    state = tmp_path / where.format(ro=unwritable)
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, state)

    done = run_cli(*command, "--config", str(config))

    assert done.returncode == 2, done.stderr
    line = one_line(done)
    assert line.startswith("configuration error: state.path: "), line
    assert expected.format(tmp=tmp_path, ro=unwritable) in line


@pytest.mark.parametrize("command", [["status"], ["dlq", "list"]], ids=" ".join)
@pytest.mark.parametrize("where", ["file/state.sqlite3", "dir"])
def test_reading_a_state_path_that_cannot_be_used_exits_2_naming_it(
    tmp_path: Path, where: str, command: list[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "dir").mkdir()
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, tmp_path / where)

    done = run_cli(*command, "--config", str(config))

    assert done.returncode == 2, done.stderr
    assert one_line(done).startswith("configuration error: state.path: "), done.stderr


def test_a_state_path_in_a_missing_directory_is_created(tmp_path: Path) -> None:
    state = tmp_path / "new" / "deeper" / "state.sqlite3"
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, state)
    done = run_cli("dlq", "replay", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert state.is_file()


def test_a_target_named_twice_is_run_once(emulators: dict[str, str], tmp_path: Path) -> None:
    config = write_feed(tmp_path / "c.toml", emulators, tmp_path / "s.sqlite3")
    report = tmp_path / "report.json"
    done = run_cli(
        "run", "--config", str(config), "--report", str(report),
        "--target", "syncbatch", "--target", "syncbatch", "--dry-run",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # the dataset's invalid records
    assert "Traceback" not in done.stderr
    assert list(json.loads(report.read_text())["targets"]) == ["syncbatch"]


def test_emulate_json_describes_each_system_and_a_configuration_that_runs(tmp_path: Path) -> None:
    with emulate(300, tmp_path) as emulators:
        check_emulate_json(emulators, tmp_path)


def check_emulate_json(emulators: Emulation, tmp_path: Path) -> None:
    systems = emulators.systems
    assert list(systems) == ["source", "syncbatch", "emporix", "norce"]
    for name, system in systems.items():
        assert system["url"].startswith("http://127.0.0.1:"), name
        assert system["credentials"] and all(system["credentials"].values()), name
        assert system["config"]["url"].startswith(system["url"]), name
    assert systems["norce"]["credentials"] == {
        "NORCE_CLIENT_ID": "demo-norce-client",
        "NORCE_CLIENT_SECRET": "demo-norce-secret",
    }
    config = emulators.config
    assert config["source"] == systems["source"]["config"]
    assert {name: config["targets"][name] for name in ("syncbatch", "emporix", "norce")} == {
        name: systems[name]["config"] for name in ("syncbatch", "emporix", "norce")
    }
    settings = settings_from_mapping(config, emulators.credentials)
    assert settings.targets.enabled() == ["syncbatch", "emporix", "norce"]

    # The configuration as a file, the credentials as the environment: a pass runs.
    config["state"]["path"] = str(tmp_path / "s.sqlite3")
    for section in config["targets"].values():
        section.pop("rate_per_second", None)
    path = tmp_path / "c.toml"
    path.write_text(config_toml(config))
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in emulators.credentials}
    done = subprocess.run(
        [PYTHON, "-m", "pipeline", "run", "--config", str(path), "--report", str(report_path)],
        capture_output=True,
        text=True,
        env={**env, **emulators.credentials},
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr  # the dataset's invalid records
    report = json.loads(report_path.read_text())
    assert report["source"]["records"] == 300
    for name in ("syncbatch", "emporix", "norce"):
        assert report["targets"][name]["created"] > 0, name
    assert get_json(f"{systems['syncbatch']['url']}/_admin/store")
    assert get_json(f"{systems['norce']['url']}/_admin/store")["customers"]
    assert get_json(f"{systems['emporix']['url']}/_admin/store")


def test_emulate_prints_urls_credentials_and_a_configuration() -> None:
    port = free_port_range()
    proc = subprocess.Popen(
        [PYTHON, "-m", "pipeline", "emulate", "--customers", "5", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert lines[0] == f"source:    http://127.0.0.1:{port}/customer-users\n"
    assert lines[3] == f"norce:     http://127.0.0.1:{port + 3}\n"
    assert lines[6].startswith("export MAN_TOKEN=demo-man-token SYNCBATCH_TOKEN=")


@pytest.mark.parametrize("busy", [0, 2], ids=["source-port", "a-target-port"])
def test_emulate_on_a_busy_port_exits_1_naming_it(busy: int) -> None:
    port = free_port_range()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + busy))
        taken.listen()
        done = run_cli("emulate", "--customers", "10", "--port", str(port))
    assert done.returncode == 1, done.stderr
    line = one_line(done)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port + busy}: "), line


def test_a_run_without_any_target_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[source]\nurl = "http://127.0.0.1:1/c"\n[state]\npath = "{tmp_path / "s"}"\n'
    )
    for command in ("run", "serve"):
        done = run_cli(command, "--config", str(config))
        assert done.returncode == 2, done.stderr
        assert one_line(done).startswith("configuration error: targets: no target is configured")


def test_serve_on_a_busy_metrics_port_exits_1_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(
            '[source]\nurl = "http://127.0.0.1:1/c"\n'
            f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
            f'[state]\npath = "{tmp_path / "s.sqlite3"}"\n'
            '[targets.syncbatch]\nurl = "http://127.0.0.1:2"\n'
            'profile_url = "https://shop.example.com/u/{customer_id}"\n'
            'account_ids = "customer_id"\norganisation_id_range = [1, 1000]\n'
        )
        done = run_cli("serve", "--config", str(config))
    assert done.returncode == 1, done.stderr
    line = one_line(done)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port} ([metrics] listen): "), line


@pytest.mark.parametrize("port", ["65534", "-1", "http"])
def test_emulate_with_ports_out_of_range_exits_2(port: str) -> None:
    done = run_cli("emulate", "--customers", "10", "--port", port)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "argument --port" in done.stderr


@pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "replay"]], ids=" ".join)
def test_dlq_of_a_target_not_configured_exits_2(tmp_path: Path, command: list[str]) -> None:
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, tmp_path / "s.sqlite3")
    done = run_cli(*command, "--config", str(config), "--target", "nope")
    assert done.returncode == 2, done.stderr
    assert one_line(done) == "configuration error: targets: target 'nope' is not configured"


def test_a_state_path_that_is_a_device_is_refused_and_left_alone(tmp_path: Path) -> None:
    before = os.stat("/dev/null").st_mode
    urls = {"source": "http://127.0.0.1:1/x", "syncbatch": "http://127.0.0.1:2"}
    config = write_feed(tmp_path / "c.toml", urls, Path("/dev/null"))
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert one_line(done) == (
        "configuration error: state.path: must be a regular file, not a device or a pipe"
    )
    assert os.stat("/dev/null").st_mode == before
