"""A real PostgreSQL server for the tests, started by the tests themselves.

The session fixture :func:`postgres_url` (``tests/conftest.py`` takes it, with the hooks below)
runs ``initdb`` in a fresh temporary directory and starts the server on 127.0.0.1, on a free
port, with its unix socket inside that directory, password authentication (scram-sha-256) for a
user with a random password, and fsync off. It yields a :class:`PostgresServer`; each test takes
its own database with :meth:`PostgresServer.new_database`::

    @pytest.mark.postgres
    def test_it(postgres_url: PostgresServer) -> None:
        url = postgres_url.new_database()
        with psycopg.connect(url, password=postgres_url.password) as conn:
            ...

The server binaries are looked for on ``PATH``, then in ``/usr/lib/postgresql/<highest>/bin``
(Debian's layout). ``initdb`` and ``pg_ctl`` refuse to run as root: as root, the server runs as
the ``postgres`` user (``nobody`` when there is none) and its directory is chown'ed to it;
that user must be able to write ``/dev/null`` (a machine where it is 0600 gets told to fix it).

Without the binaries the tests that take the fixture skip, saying how to get PostgreSQL, unless
``PIPELINE_REQUIRE_POSTGRES=1``: then they fail, and so does the session if any test marked
``postgres`` (or taking the fixture) was skipped for any reason. CI (``.ci/run``) sets it.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

REQUIRE_ENV = "PIPELINE_REQUIRE_POSTGRES"
"""Set to 1, a missing server or a skipped postgres test fails the run (CI sets it)."""

DEBIAN_ROOT = Path("/usr/lib/postgresql")
"""Where Debian's ``postgresql-<version>`` packages put each version's ``bin``."""

BINARIES = ("initdb", "pg_ctl", "postgres")

MISSING = "PostgreSQL server binaries not found"
"""The reason each postgres test skips without them (the session's summary says the rest)."""


def how_to_get() -> str:
    return (
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor in "
        f"{DEBIAN_ROOT}/<version>/bin: install them with `apt-get install postgresql` "
        "(Debian/Ubuntu) or put their bin directory on PATH"
    )


USER = "pipeline"
"""The database superuser the tests connect as (with :attr:`PostgresServer.password`)."""

START_SECONDS = 30


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: on PATH, else Debian's newest."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = Path(initdb).parent
        if all(os.access(bindir / name, os.X_OK) for name in BINARIES):
            return bindir
    candidates: list[tuple[int, Path]] = []
    if DEBIAN_ROOT.is_dir():
        for version in DEBIAN_ROOT.iterdir():
            bindir = version / "bin"
            if version.name.isdigit() and all(
                os.access(bindir / name, os.X_OK) for name in BINARIES
            ):
                candidates.append((int(version.name), bindir))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


@dataclass
class PostgresServer:
    """A running server: connect to :attr:`url` (or a :meth:`new_database`) with the password."""

    host: str
    port: int
    user: str
    password: str
    dbname: str = "postgres"
    directory: Path = field(default=Path(), repr=False)
    _numbers: Iterator[int] = field(default_factory=itertools.count, repr=False)

    @property
    def url(self) -> str:
        """``postgresql://user@127.0.0.1:port/dbname``: the password is not in it."""
        return self.url_of(self.dbname)

    def url_of(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, url: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection to ``url`` (the server's own database by default)."""
        return psycopg.connect(url or self.url, password=self.password, **kwargs)

    def new_database(self) -> str:
        """Create an empty database of its own for a test; its URL (without the password)."""
        name = f"test_{next(self._numbers)}_{secrets.token_hex(4)}"
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_of(name)


class _Cluster:
    """initdb, start and stop of one server in ``directory``, as ``account`` when given."""

    def __init__(self, bindir: Path, directory: Path, account: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.directory = directory
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.log = directory / "server.log"
        self.account = account

    def run(self, *args: str) -> None:
        ids: dict[str, Any] = {}
        if self.account is not None:
            ids = {
                "user": self.account.pw_uid,
                "group": self.account.pw_gid,
                "extra_groups": [],
            }
        done = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C", "PGTZ": "UTC"},
            **ids,
        )
        if done.returncode != 0:
            output = done.stdout + done.stderr
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{output}{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\nserver log:\n" + self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def own(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def check_devnull(self) -> None:
        """initdb and pg_ctl send output to /dev/null: the server's user must be able to."""
        mode = os.stat(os.devnull).st_mode
        usable = (
            stat.S_ISCHR(mode) and mode & 0o006 == 0o006
            if self.account is not None
            else os.access(os.devnull, os.R_OK | os.W_OK)
        )
        if not usable:
            raise RuntimeError(
                f"{os.devnull} is not a device every user can read and write "
                f"(mode {stat.filemode(mode)}), so initdb and pg_ctl cannot run: "
                f"restore it, as root: chmod 666 {os.devnull}"
            )

    def init(self, password: str) -> None:
        self.check_devnull()
        self.own(self.directory)
        self.sockets.mkdir()
        self.own(self.sockets)
        pwfile = self.directory / "password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self.own(pwfile)
        self.run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            USER,
            "--pwfile",
            str(pwfile),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        (self.data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def start(self, port: int) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.sockets}'",
            "password_encryption": "scram-sha-256",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "40",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/kit/postgres.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.run(
            "pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log),
            "--wait", "--timeout", str(START_SECONDS),
        )  # fmt: skip

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "fast", "--wait")


def start_server(bindir: Path) -> Iterator[PostgresServer]:
    """Run a fresh server from ``bindir`` for as long as the generator is suspended."""
    directory = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    cluster = _Cluster(bindir, directory, _server_account())
    password = secrets.token_urlsafe(18)
    started = False
    try:
        cluster.init(password)
        for attempt in itertools.count(1):
            port = _free_port()
            try:
                cluster.start(port)
            except RuntimeError:
                if attempt == 3:  # a port taken between choosing and binding, three times?
                    raise
                continue
            started = True
            break
        yield PostgresServer("127.0.0.1", port, USER, password, directory=directory)
    finally:
        try:
            if started:
                cluster.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; skips (fails under PIPELINE_REQUIRE_POSTGRES=1) without."""
    bindir = find_bindir()
    if bindir is None:
        if required():
            pytest.fail(f"{REQUIRE_ENV}=1, but {how_to_get()}", pytrace=False)
        pytest.skip(f"{MISSING} (the summary says how to get them)")
    yield from start_server(bindir)


# The session fails under PIPELINE_REQUIRE_POSTGRES=1 when a postgres test was skipped.

_SKIPPED = pytest.StashKey[list[str]]()  # the postgres tests skipped, for any reason
_MISSING = pytest.StashKey[int]()  # how many of them for want of the binaries


def is_postgres_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("postgres") is not None or "postgres_url" in getattr(
        item, "fixturenames", ()
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and is_postgres_test(item):
        item.config.stash.setdefault(_SKIPPED, []).append(item.nodeid)
        if MISSING in str(report.longrepr):
            item.config.stash[_MISSING] = item.config.stash.get(_MISSING, 0) + 1
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    skipped = session.config.stash.get(_SKIPPED, [])
    passing = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if required() and skipped and passing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: why the run fails (PIPELINE_REQUIRE_POSTGRES=1), or how to get PostgreSQL."""
    skipped = terminalreporter.config.stash.get(_SKIPPED, [])
    if required() and skipped:
        terminalreporter.write_line(
            f"{REQUIRE_ENV}=1 and {len(skipped)} postgres test(s) skipped: the run fails "
            f"(first: {skipped[0]})",
            red=True,
        )
        return
    missing = terminalreporter.config.stash.get(_MISSING, 0)
    if missing:
        terminalreporter.write_line(
            f"{missing} postgres test(s) skipped: {how_to_get()}", yellow=True
        )
