"""Shared fixtures: real kiosks on loopback, a private controller home, sample lessons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.client import ControllerIdentity
from media.lesson import Lesson, load_lesson, sample_lesson_path
from tests.kiosks import KioskThread
from tests.postgres import PostgresServer, postgres_bin

TEACHER = ControllerIdentity("c-test-teacher", "Петрова Анна Сергеевна")


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own CLASSCAST_HOME and Russian output."""
    monkeypatch.setenv("CLASSCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLASSCAST_LANG", "ru")
    # mDNS only on loopback in tests (DESIGN §7): never multicast on real interfaces.
    monkeypatch.setenv("CLASSCAST_MDNS_INTERFACES", "127.0.0.1")
    # The phone remote's LAN listener on loopback too: no test binds a LAN address.
    monkeypatch.setenv("CLASSCAST_REMOTE_HOST", "127.0.0.1")
    # The teacher's name, as `--teacher` gives it: pairing asks for one when none is saved.
    monkeypatch.setenv("CLASSCAST_TEACHER", TEACHER.name)


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[KioskThread]:
    with KioskThread(tmp_path / "kiosk") as k:
        yield k


@pytest.fixture(scope="session")
def sample_lesson() -> Lesson:
    return load_lesson(sample_lesson_path())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (tests/postgres.py)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (initdb/pg_ctl under /usr/lib/postgresql/*/bin): "
            "run scripts/setup.sh --test"
        )
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def district_url(postgres_server: PostgresServer) -> str:
    """A PostgreSQL URL whose tables are this test's alone (a fresh schema)."""
    return postgres_server.fresh_url()
