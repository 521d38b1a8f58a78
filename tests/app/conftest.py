"""Shared fixtures of the AppTest suites: fresh Streamlit state per test, simulated brokers seeded
once per session (``seeded_broker``) and copied into the test's app database (``use_broker``, ``db_url``),
the two ways a test opens the app (``open_page``, ``open_linked``) and what a download button delivers
(``downloaded``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from connectors import database
from connectors.simulator import SimulationConfig, seed_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_streamlit_state() -> Iterator[None]:
    """Streamlit caches and our engines are process-wide; no test may see another's."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    database.dispose_engines()


@pytest.fixture
def downloaded(monkeypatch) -> Callable[[AppTest, str], str]:
    """``downloaded(at, key)``: the text the download button keyed ``key`` delivers when clicked.

    Our buttons build their file on the click (a deferred callable, registered with the run's media
    file manager, which AppTest does not expose); the managers are recorded here and the file is built
    through the same call the server makes for a browser's click.
    """
    managers: list[MediaFileManager] = []
    register = MediaFileManager.add_deferred

    def recording(self: MediaFileManager, *args, **kwargs) -> str:
        if self not in managers:
            managers.append(self)
        return register(self, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)

    def fetch(at: AppTest, key: str) -> str:
        file_id = at.get_by_key(key).proto.deferred_file_id
        assert file_id, f"{key} has no file built on click"
        manager = next(m for m in reversed(managers) if file_id in m._deferred_callables)
        url = manager.execute_deferred(file_id)
        return manager._storage.get_file(url.rsplit("/", 1)[-1]).content.decode("utf-8")

    return fetch



@pytest.fixture(scope="session")
def seeded_broker(tmp_path_factory) -> Callable[[SimulationConfig], Path]:
    """``seeded_broker(config)``: a closed DuckDB file holding the simulated broker of ``config``, seeded
    once per session and config (modules asking for the same broker share it). Tests open a copy
    (``use_broker``), never this file."""
    files: dict[SimulationConfig, Path] = {}

    def seeded(config: SimulationConfig) -> Path:
        if config not in files:
            path = tmp_path_factory.mktemp("broker") / "seed.duckdb"
            engine = database.get_engine(f"duckdb:///{path}")
            seed_database(engine, config)
            engine.dispose()
            database.dispose_engines()  # the app under test opens its copy itself
            files[config] = path
        return files[config]

    return seeded


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    """This test's app database, tmp_path/app.duckdb, set as TRADERLENS_DB_URL: empty (the app migrates it
    when it starts) unless the test copies a broker in (``use_broker``). The app tests run on DuckDB, so
    this replaces the both-backends ``db_url`` of tests/conftest.py here."""
    url = f"duckdb:///{tmp_path / 'app.duckdb'}"
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    return url


@pytest.fixture
def use_broker(tmp_path, monkeypatch) -> Callable[[Path], str]:
    """``use_broker(seeded)``: a copy of the seeded file as this test's app database (tmp_path/app.duckdb,
    set as TRADERLENS_DB_URL); its URL."""

    def use(seeded: Path) -> str:
        path = tmp_path / "app.duckdb"
        shutil.copyfile(seeded, path)
        url = f"duckdb:///{path}"
        monkeypatch.setenv("TRADERLENS_DB_URL", url)
        return url

    return use


def _open_page(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update(query)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="session")
def open_page() -> Callable[..., AppTest]:
    """``open_page(page=None, **query)``: the app through its entrypoint with the link's query
    parameters, run once on the default page and then, with ``page`` ("pages/cohorts.py"), switched to
    it and run again; it must not raise."""
    return _open_page


def _open_linked(page: str, query: dict[str, str | list[str]]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page)
    return at.run()


@pytest.fixture(scope="session")
def open_linked() -> Callable[[str, dict[str, str | list[str]]], AppTest]:
    """``open_linked(page, query)``: a shared link opened: ``page`` with ``query`` as its parameters, run
    once, as a browser lands on it (whatever it shows, exceptions included, is the test's to check)."""
    return _open_linked
