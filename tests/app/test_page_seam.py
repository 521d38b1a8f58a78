"""The page seam (components/page.py): each cached loader keeps its own entries, keyed by the database,
the user and the arguments, and computes with the app's engine."""

from __future__ import annotations

import pytest

from components import page
from server import engine as runtime

calls: list[tuple] = []


def first(engine, x: int) -> tuple:
    calls.append(("first", x))
    return "first", x


def second(engine, x: int) -> tuple:
    calls.append(("second", x))
    return "second", x


@pytest.fixture
def app_db(tmp_path, monkeypatch) -> str:
    url = f"duckdb:///{tmp_path / 'seam.duckdb'}"
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    calls.clear()
    return url


def test_two_loaders_with_the_same_arguments_do_not_share_entries(app_db):
    load_first, load_second = page.loader(first), page.loader(second)
    assert load_first(1) == ("first", 1)
    assert load_second(1) == ("second", 1)  # one inner cached function for both would answer ("first", 1)
    assert load_first(1) == ("first", 1) and load_second(x=2) == ("second", 2)
    assert calls == [("first", 1), ("second", 1), ("second", 2)]


def test_a_loader_is_keyed_by_its_arguments_the_user_and_the_database(app_db, tmp_path, monkeypatch):
    load = page.loader(first)
    load(1), load(1), load(2)
    load(1, user="alice"), load(1, user="alice"), load(1, user="bob")
    monkeypatch.setenv("TRADERLENS_DB_URL", f"duckdb:///{tmp_path / 'other.duckdb'}")
    load(1)
    assert calls == [("first", 1), ("first", 2), ("first", 1), ("first", 1), ("first", 1)]


def test_a_loader_computes_with_the_apps_engine(app_db):
    seen = []

    @page.loader(ttl="1m", max_entries=2, spinner="Working…")
    def engine_of(engine) -> str:
        seen.append(engine)
        return str(engine.url)

    assert engine_of() == app_db
    assert seen == [runtime.get_engine()]
    assert engine_of.__name__ == "engine_of"


def test_a_loader_over_a_modules_function_is_built_once_per_process(app_db):
    # Wrapping reads and hashes the function's source: a page rerun must not pay for it again.
    assert page.loader(first) is page.loader(first)
    assert page.loader(first) is not page.loader(first, ttl="1m")

    def local(engine) -> int:  # a page script defines its functions anew on every run
        return 1

    assert page.loader(local) is not page.loader(local)
