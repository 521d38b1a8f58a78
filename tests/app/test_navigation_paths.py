"""Links by page name (components/navigation.py): every page opens by its own name, "/" opens the
Overview, and an unknown name is said on the page instead of Streamlit's blocking "Page not found".

A browser names the page it wants only on a session's first run: the URL's path, as ``page_name`` of
the rerun request (later runs carry the page's hash). AppTest sends no name, so ``open_at`` adds it to
the first request exactly as the browser does, and records every ``page_not_found`` message Streamlit
would send (the frontend shows that as the dialog). AppTest also starts every run as if no
``st.navigation`` had ever run in the process (Streamlit's legacy ``pages/`` mode, which resolves the
name against the pages/ files); a served app leaves that mode at its first run (``cli.py serve`` warms
the pages up before the first visitor), so ``not_found`` leaves it too.
"""

from __future__ import annotations

import functools
import re

import pytest
from streamlit.commands import navigation as st_navigation
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import RerunData
from streamlit.testing.v1 import AppTest, local_script_runner

from tests.app import sample_data
from tests.app.conftest import ROOT

PAGES = {  # url name -> the page's title
    "overview": "Overview", "cohorts": "Cohorts & retention", "funnels": "Funnels & conversion",
    "lifecycle": "Lifecycle", "segments": "Segments", "predictions": "Predictions",
    "trader": "Trader 360", "data": "Data",
}


@pytest.fixture
def not_found(monkeypatch, db_url) -> list[str]:
    """The ``page_not_found`` messages sent (one entry per message), on the sample database."""
    sample_data.fill_sample_database(db_url)
    init = PagesManager.__init__

    def served(self, *args, **kwargs) -> None:  # as in a server where st.navigation has run
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", served)
    sent: list[str] = []
    send = st_navigation.send_page_not_found
    monkeypatch.setattr(st_navigation, "send_page_not_found", lambda ctx: (sent.append("sent"), send(ctx)))
    return sent


def open_at(path: str, monkeypatch) -> AppTest:
    """The app as a browser's first visit to ``/path`` opens it (one run; later runs carry no name)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    monkeypatch.setattr(local_script_runner, "RerunData", functools.partial(RerunData, page_name=path))
    try:
        at.run()
    finally:
        monkeypatch.setattr(local_script_runner, "RerunData", RerunData)
    assert not at.exception, at.exception
    return at


def title(at: AppTest) -> str:
    return at.title[0].value


def page_links(at: AppTest) -> list[str]:
    return [link.proto.label for link in at.get("page_link")]


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_opens_by_its_own_name(path, not_found, monkeypatch):
    at = open_at(path, monkeypatch)
    assert title(at) == PAGES[path]
    assert not_found == []  # the Overview's own name used to get Streamlit's "Page not found" dialog
    # No unknown-page notice (the Segments page may warn that the tiny sample is too small to cluster).
    assert not [w for w in at.warning if "no page called" in w.value]


def test_the_root_opens_the_overview(not_found, monkeypatch):
    at = open_at("", monkeypatch)
    assert title(at) == "Overview" and not_found == [] and not at.warning


def test_the_overview_by_name_stays_there_on_the_next_run(not_found, monkeypatch):
    at = open_at("overview", monkeypatch)
    at.run()  # a widget's rerun: the browser sends the Overview's hash, no name
    assert title(at) == "Overview" and not_found == []


def test_an_unknown_name_is_said_on_the_page_with_every_page_linked(not_found, monkeypatch):
    at = open_at("overveiw", monkeypatch)
    assert not_found == []
    assert title(at) == "Page not found"
    assert "overveiw" in at.warning[0].value
    assert page_links(at) == [f"{name} — /{path}" for path, name in PAGES.items()]
    at.run()  # the next run (a sidebar filter, say) keeps the notice instead of jumping elsewhere
    assert title(at) == "Page not found" and not_found == []


def test_an_unknown_name_is_shown_as_text(not_found, monkeypatch):
    at = open_at("*bold*[x]", monkeypatch)
    assert not_found == []
    # Escaped: the Markdown renders the characters, not emphasis or a link.
    assert re.search(r"\\\*bold\\\*\\\[x\\\]", at.warning[0].value)
