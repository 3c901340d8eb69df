"""Shared fixtures: every store-backed test runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

# The headless-Chromium fixtures (`chromium`, `page`, `page_without_js`, `serve_asgi`) for every test module.
from browser import chromium, page, page_without_js, serve_asgi  # noqa: F401
from omnisdk import Omni, VirtualClock

POSTGRES_URL = os.environ.get("OMNISDK_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any reason: report it
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    problem = _postgres_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required in CI: {problem}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} not reachable ({problem}); set OMNISDK_TEST_POSTGRES")
    return POSTGRES_URL


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_omni(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Omni]:
    """One client per store for a whole module (fuzz tests: Hypothesis calls each test many times)."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/omni.db", None
    else:
        postgres = request.getfixturevalue("postgres_url")
        schema = "omni_fuzz_" + uuid.uuid4().hex[:12]
        url = f"{postgres}?schema={schema}"
    with Omni(url, clock=VirtualClock()) as client:
        yield client
    if schema is not None:
        import psycopg

        with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL store URL with a fresh schema, dropped afterwards."""
    import psycopg

    schema = "omni_test_" + uuid.uuid4().hex[:12]
    yield f"{postgres_url}?schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """Each test using it runs twice: on a SQLite file and on a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/omni.db"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def omni(store_url: str, clock: VirtualClock) -> Iterator[Omni]:
    with Omni(store_url, clock=clock) as client:
        yield client
