"""Every page says whose days it reports in (the reporting time zone), and a zone that does not exist
is one clear message, not a trace."""

from __future__ import annotations

from datetime import date

import pytest

from connectors import clock
from connectors.simulator import SimulationConfig

BROKER = SimulationConfig(traders=150, days=40, seed=5, end=date(2026, 11, 1))
PAGES = ["pages/overview.py", "pages/cohorts.py", "pages/funnels.py", "pages/lifecycle.py", "pages/data.py"]


def _sidebar_captions(at) -> list[str]:
    return [c.value for c in at.sidebar.caption]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_names_the_reporting_time_zone(page, seeded_broker, use_broker, open_page, monkeypatch):
    use_broker(seeded_broker(BROKER))
    monkeypatch.setenv(clock.ENV, "America/New_York")
    at = open_page(page)
    assert any("Days, weeks and months in America/New_York (UTC-0" in c for c in _sidebar_captions(at)), \
        _sidebar_captions(at)


def test_utc_is_named_too(seeded_broker, use_broker, open_page):
    use_broker(seeded_broker(BROKER))
    at = open_page()
    assert any(c.endswith("Days, weeks and months in UTC") for c in _sidebar_captions(at))
    assert any(c.endswith("(UTC)") and "–" in c for c in _sidebar_captions(at))  # the date range's caption


def test_a_zone_that_does_not_exist_is_one_clear_message(seeded_broker, use_broker, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import ROOT

    use_broker(seeded_broker(BROKER))
    monkeypatch.setenv(clock.ENV, "Mars/Olympus")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error).replace("\\", "")  # Markdown escapes
    assert "no time zone named 'Mars/Olympus'" in shown and clock.ENV in shown
