"""The console reading from a PostgreSQL streaming replica (``database.read_url``).

A real primary and a real hot standby fed by streaming replication are started in a temporary
folder with the machine's PostgreSQL binaries (``initdb``, ``pg_basebackup -R``), on their
own loopback ports. Replaying on the standby is paused (``pg_wal_replay_pause``) to make it
behind on purpose. The tests run in the PostgreSQL suite (``KABAR_TEST_DATABASE_URL``); the
configuration checks run in both.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from bot import create_app
from bot.config import ConfigError, load_settings
from bot.db import Database
from bot.migrate import upgrade
from bot.models import Graduate
from tests.conftest import PG_URL
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """A primary and its streaming hot standby, each its own postmaster."""

    def __init__(self, root: Path, bindir: Path) -> None:
        self.root, self.bindir = root, bindir
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.primary_port, self.replica_port = _free_port(), _free_port()
        self.primary_dir, self.replica_dir = root / "primary", root / "replica"

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True,
                       timeout=120, cwd=self.root)

    def pg_ctl(self, data: Path, action: str, port: int | None = None) -> None:
        args = [str(self.bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                "-l", str(data.with_suffix(".log"))]
        if port is not None:
            args += ["-o", f"-p {port} -c listen_addresses=127.0.0.1 "
                           f"-c unix_socket_directories={self.root} -c fsync=off "
                           "-c wal_level=replica -c max_wal_senders=4"]
        if action == "stop":
            args += ["-m", "immediate"]
        self.run(*args, action)

    def start(self) -> None:
        self.run(str(self.bindir / "initdb"), "-D", str(self.primary_dir), "-U", "postgres",
                 "--auth=trust", "-E", "UTF8", "--no-sync")
        self.pg_ctl(self.primary_dir, "start", self.primary_port)
        self.run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p",
                 str(self.primary_port), "-U", "postgres", "kabar")
        self.run(str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                 str(self.primary_port), "-U", "postgres", "-D", str(self.replica_dir), "-R",
                 "-X", "stream", "--no-sync", "--checkpoint=fast")
        self.start_replica()

    def start_replica(self) -> None:
        self.pg_ctl(self.replica_dir, "start", self.replica_port)

    def stop_replica(self) -> None:
        self.pg_ctl(self.replica_dir, "stop")

    def stop(self) -> None:
        for data in (self.replica_dir, self.primary_dir):
            if (data / "postmaster.pid").exists():
                try:
                    self.pg_ctl(data, "stop")
                except subprocess.SubprocessError:
                    pass

    def url(self, port: int) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/kabar"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not PG_URL:
        pytest.skip("the read replica is tested in the PostgreSQL suite")
    if not PG_BINS or not shutil.which("runuser") and os.geteuid() == 0:
        pytest.skip("PostgreSQL's server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="kabar-replica-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    found = Cluster(root, Path(PG_BINS[-1]))
    try:
        found.start()
        upgrade(found.primary_url)
        yield found
    finally:
        found.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def replica_settings(cluster):
    return load_settings(environ={}).with_overrides(
        app={"secret_key": "test-secret", "public_url": "http://kabar.test"},
        database={"url": cluster.primary_url, "read_url": cluster.replica_url,
                  "replica_max_lag_seconds": 300.0, "primary_after_write_seconds": 310.0},
        transport={"kind": "simulator"},
        scheduler={"quiet_hours": ""},
    )


def _on_replica(cluster: Cluster, sql: str):
    engine = create_engine(cluster.replica_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def _replica_has(cluster: Cluster, graduate_id: int, active: bool) -> bool:
    return _on_replica(cluster, f"SELECT active FROM graduates WHERE id = {graduate_id}") \
        is active


def _roster_shows_active(client, name: str) -> bool:
    """Whether the roster row of ``name`` offers "deactivate" (so the graduate is active)."""
    page = client.get("/staff/roster", query_string={"q": name})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert name in html
    return 'name="active" value="0"' in html


def _forget_recent_write(client) -> None:
    with client.session_transaction() as cookie:
        cookie.pop("_primary_until", None)


def test_pages_read_the_replica_and_a_browser_that_just_wrote_reads_the_primary(
        cluster, replica_settings):
    db = Database(cluster.primary_url, read_url=cluster.replica_url, max_lag_seconds=300)
    try:
        with db.session() as session:
            cohort = make_cohort(session, name="Replika 1")
            graduate = make_graduates(session, cohort, count=2, first_phone=6281300000001)[0]
            graduate_id, name = graduate.id, graduate.name
        app = create_app(replica_settings, db)
        app.config["TESTING"] = True
        client = signed_in_client(app, db, name="replika-admin")
        wait_for(lambda: _replica_has(cluster, graduate_id, True), "the replica to catch up")
        _on_replica(cluster, "SELECT pg_wal_replay_pause()")
        try:
            # Deactivated on the primary while the replica does not replay.
            page = client.get("/staff/roster", query_string={"q": name}).get_data(as_text=True)
            response = client.post(f"/staff/roster/{graduate_id}/active",
                                   data={"active": "0", "csrf_token": csrf_from(page)})
            assert response.status_code == 302
            with db.read_session() as session:
                assert session.scalar(select(Graduate.active)
                                      .where(Graduate.id == graduate_id)) is False
            assert _replica_has(cluster, graduate_id, True)  # the replica has not seen it
            # The browser that saved it sees it on the next page (read from the primary) ...
            assert not _roster_shows_active(client, name)
            # ... and once it has not written for a while, pages come from the replica.
            _forget_recent_write(client)
            assert db.replica_state(fresh=True).usable
            assert _roster_shows_active(client, name)
        finally:
            _on_replica(cluster, "SELECT pg_wal_replay_resume()")
        wait_for(lambda: _replica_has(cluster, graduate_id, False), "the replica to replay")
        assert not _roster_shows_active(client, name)
    finally:
        db.dispose()


def test_a_replica_too_far_behind_is_left_until_it_catches_up(cluster, replica_settings):
    settings = replica_settings.with_overrides(database={"replica_max_lag_seconds": 1.0})
    assert settings.database.replica_max_lag_seconds == 1.0
    db = Database(cluster.primary_url, read_url=cluster.replica_url, max_lag_seconds=1.0)
    try:
        with db.session() as session:
            cohort = make_cohort(session, name="Replika 2")
            graduate = make_graduates(session, cohort, count=1, first_phone=6281300000101)[0]
            graduate_id, name = graduate.id, graduate.name
        app = create_app(settings, db)
        app.config["TESTING"] = True
        client = signed_in_client(app, db, name="replika-lag")
        wait_for(lambda: _replica_has(cluster, graduate_id, True), "the replica to catch up")
        _on_replica(cluster, "SELECT pg_wal_replay_pause()")
        try:
            with db.session() as session:
                session.get(Graduate, graduate_id).active = False
            state = wait_for(lambda: (s := db.replica_state(fresh=True)) and not s.usable and s,
                             "the replica to count as too far behind")
            assert "behind" in state.reason and state.lag_seconds > 1.0
            _forget_recent_write(client)
            assert not _roster_shows_active(client, name)  # read from the primary
            health = client.get("/healthz").get_json()
            assert health["status"] == "degraded"
            assert health["replica"]["usable"] is False
            assert any("read replica" in p for p in health["problems"])
        finally:
            _on_replica(cluster, "SELECT pg_wal_replay_resume()")
        wait_for(lambda: db.replica_state(fresh=True).usable, "the replica to be used again")
        assert _replica_has(cluster, graduate_id, False)
        health = client.get("/healthz").get_json()
        assert health["replica"]["usable"] is True
        assert not any("read replica" in p for p in health["problems"])
    finally:
        db.dispose()


def test_a_replica_that_stopped_receiving_counts_as_behind(cluster):
    """Replication broken (the replica no longer connects to the primary): it has replayed
    all it received, yet falls behind what the primary writes, and is left."""
    db = Database(cluster.primary_url, read_url=cluster.replica_url, max_lag_seconds=1.0)
    conninfo = _on_replica(cluster, "SHOW primary_conninfo")
    try:
        assert wait_for(lambda: db.replica_state(fresh=True).usable, "the replica in use")
        _on_replica(cluster, "ALTER SYSTEM SET primary_conninfo = ''")
        _on_replica(cluster, "SELECT pg_reload_conf()")
        wait_for(lambda: _on_replica(cluster, "SELECT count(*) FROM pg_stat_wal_receiver") == 0,
                 "the replica to stop receiving")
        with db.session() as session:
            cohort_id = make_cohort(session, name="Replika 4").id
        state = wait_for(lambda: (s := db.replica_state(fresh=True)) and not s.usable and s,
                         "the replica to count as behind")
        assert "behind" in state.reason
        assert _on_replica(cluster, f"SELECT count(*) FROM cohorts WHERE id = {cohort_id}") == 0
        # The watching thread of a web process sees the same without being asked.
        watched = Database(cluster.primary_url, read_url=cluster.replica_url,
                           max_lag_seconds=1.0)
        try:
            wait_for(lambda: "behind" in watched.replica_state().reason,
                     "the watching thread to find the replica behind")
        finally:
            watched.dispose()
    finally:
        quoted = conninfo.replace("'", "''")
        _on_replica(cluster, f"ALTER SYSTEM SET primary_conninfo = '{quoted}'")
        _on_replica(cluster, "SELECT pg_reload_conf()")
        wait_for(lambda: db.replica_state(fresh=True).usable, "the replica to catch up again")
        db.dispose()


def test_a_replica_that_is_down_leaves_the_console_on_the_primary(cluster, replica_settings,
                                                                  tmp_path):
    # The replica's state is looked at again only when asked (a clock that stands still):
    # the pages below find it gone themselves.
    db = Database(cluster.primary_url, read_url=cluster.replica_url, max_lag_seconds=300,
                  monotonic=lambda: 0.0, watch_replica=False)
    try:
        with db.session() as session:
            cohort = make_cohort(session, name="Replika 3")
            name = make_graduates(session, cohort, count=1, first_phone=6281300000201)[0].name
        app = create_app(replica_settings, db)
        app.config["TESTING"] = True
        client = signed_in_client(app, db, name="replika-down")
        _forget_recent_write(client)
        wait_for(lambda: db.replica_state(fresh=True).usable and _roster_shows_active(
            client, name), "the replica to have the graduate")  # pooled replica connections
        cluster.stop_replica()
        try:
            assert db.replica_state().usable  # as last seen
            for path in ("/staff/dashboard", "/staff/log", f"/staff/roster?q={name}"):
                assert client.get(path).status_code == 200, path
            assert _roster_shows_active(client, name)  # the primary has it
            state = db.replica_state()
            assert not state.usable and "cannot be reached" in state.reason
            config = tmp_path / "kabar.toml"
            config.write_text(f'[database]\nurl = "{cluster.primary_url}"\n'
                              f'read_url = "{cluster.replica_url}"\n')
            result = subprocess.run(
                [str(Path(sys.executable).parent / "kabar"), "--config", str(config),
                 "status"], capture_output=True, text=True, timeout=60)
            assert "read replica" in result.stdout
            assert "NOT IN USE: cannot be reached" in result.stdout
        finally:
            cluster.start_replica()
        wait_for(lambda: db.replica_state(fresh=True).usable, "the replica to be used again")
    finally:
        db.dispose()


def test_a_read_replica_needs_postgresql(tmp_path):
    with pytest.raises(ConfigError, match=r"database\.read_url .*needs PostgreSQL"):
        load_settings(environ={"KABAR_DATABASE_READ_URL":
                               "postgresql+psycopg://postgres@replica/kabar"})
    with pytest.raises(ConfigError, match=r"database\.read_url must be a SQLAlchemy URL"):
        load_settings(environ={"KABAR_DATABASE_URL": "postgresql+psycopg://db/kabar",
                               "KABAR_DATABASE_READ_URL": "replica-host"})
    config = tmp_path / "kabar.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg://db/kabar"\n'
                      'read_url = "postgresql+psycopg://replica/kabar"\n'
                      "replica_max_lag_seconds = 0\n")
    with pytest.raises(ConfigError, match=r"kabar\.toml.*replica_max_lag_seconds"):
        load_settings(config, environ={})
    # A browser that just saved something reads the primary at least as long as the lag.
    config.write_text('[database]\nurl = "postgresql+psycopg://db/kabar"\n'
                      'read_url = "postgresql+psycopg://replica/kabar"\n'
                      "replica_max_lag_seconds = 30\nprimary_after_write_seconds = 10\n")
    with pytest.raises(ConfigError, match=r"primary_after_write_seconds must be at least "
                                          r"database\.replica_max_lag_seconds \+ 10 \(40\)"):
        load_settings(config, environ={})
    settings = load_settings(environ={"KABAR_DATABASE_URL": "postgresql+psycopg://db/kabar",
                                      "KABAR_DATABASE_READ_URL":
                                      "postgresql+psycopg://replica/kabar"})
    assert settings.database.read_url == "postgresql+psycopg://replica/kabar"


def test_without_a_replica_pages_read_the_primary(db):
    assert db.replica_state() is None
    with db.replica_session() as session:
        assert session.bind is db.read_sessions.kw["bind"]
