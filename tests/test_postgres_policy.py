"""Without PostgreSQL the postgres tests skip, saying how to get it; under
PIPELINE_REQUIRE_POSTGRES=1 (CI) they fail, and so does a run where one was skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.kit import postgres
from tests.kit.postgres import REQUIRE_ENV

pytest_plugins = ["pytester"]

# The child finds tests.kit from the checkout, and no Debian layout: only its PATH counts.
CONFTEST = """
from pathlib import Path

import tests.kit.postgres
from tests.kit.postgres import (
    postgres_url,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

tests.kit.postgres.DEBIAN_ROOT = Path("/nonexistent/postgresql")
"""
INI = """
[pytest]
addopts = -p no:cacheprovider -ra
markers = postgres: needs PostgreSQL
"""
NEEDS_SERVER = """
import pytest

pytestmark = pytest.mark.postgres

def test_one(postgres_url):
    pass

def test_two(postgres_url):
    assert postgres_url.new_database()

def test_without_postgres():
    pass
"""
SKIPS_ITSELF = """
import pytest

@pytest.mark.postgres
def test_skipped_for_another_reason():
    pytest.skip("not today")

def test_other():
    pass
"""


@pytest.fixture
def child(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocess sees the kit but no PostgreSQL binaries on its PATH."""
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    path = os.environ.get("PATH", "").split(os.pathsep)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(d for d in path if d and not (Path(d) / "initdb").exists())
    )
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_without_the_binaries_the_postgres_tests_skip_saying_how_to_get_them(
    child: pytest.Pytester,
) -> None:
    child.makepyfile(test_pg=NEEDS_SERVER)
    result = child.runpytest_subprocess()
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
    # One line for the suite, saying how to get PostgreSQL.
    lines = [line for line in result.outlines if "apt-get install postgresql" in line]
    assert lines == [
        "2 postgres test(s) skipped: PostgreSQL server binaries (initdb, pg_ctl, postgres) not "
        "found on PATH nor in /nonexistent/postgresql/<version>/bin: install them with "
        "`apt-get install postgresql` (Debian/Ubuntu) or put their bin directory on PATH"
    ]


def test_under_require_postgres_missing_binaries_fail_the_tests(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    child.makepyfile(test_pg=NEEDS_SERVER)
    result = child.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*{REQUIRE_ENV}=1, but PostgreSQL server binaries*"])


def test_under_require_postgres_a_skipped_postgres_test_fails_the_run(
    child: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    child.makepyfile(test_skips=SKIPS_ITSELF)
    result = child.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.OK
    assert "apt-get" not in result.stdout.str()  # it was not for want of PostgreSQL
    monkeypatch.setenv(REQUIRE_ENV, "1")
    result = child.runpytest_subprocess()
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"{REQUIRE_ENV}=1 and 1 postgres test(s) skipped: the run fails*"])


def test_the_binaries_are_found_on_path_then_in_debians_newest_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def install(bindir: Path) -> Path:
        bindir.mkdir(parents=True)
        for name in postgres.BINARIES:
            (bindir / name).write_text("#!/bin/sh\n")
            (bindir / name).chmod(0o755)
        return bindir

    debian = tmp_path / "lib"
    monkeypatch.setattr(postgres, "DEBIAN_ROOT", debian)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert postgres.find_bindir() is None
    install(debian / "9" / "bin")
    newest = install(debian / "15" / "bin")
    (debian / "16" / "bin").mkdir(parents=True)  # a version without its server binaries
    assert postgres.find_bindir() == newest
    on_path = install(tmp_path / "local")
    monkeypatch.setenv("PATH", str(on_path))
    assert postgres.find_bindir() == on_path
