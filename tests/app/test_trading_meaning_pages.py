"""What the pages say about trading and churn: a funnel's Trade step is the opening of a position, and
the churn activity setting (TRADERLENS_CHURN_ACTIVITY) is named beside the churn tile and the stages."""

from __future__ import annotations

from datetime import date

import pytest

from analytics.events import CHURN_ACTIVITY_ENV
from connectors.simulator import SimulationConfig


@pytest.fixture
def broker_url(seeded_broker, use_broker) -> str:
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=150, seed=5, end=date(2026, 11, 1))))


def churn_tile(at):
    return next(m for m in at.metric if m.label == "Churn rate")


@pytest.mark.usefixtures("broker_url")
@pytest.mark.parametrize("setting, named", [
    (None, "an approved deposit (TRADERLENS_CHURN_ACTIVITY=trading_funding)"),
    ("any", "an approved deposit or a login (TRADERLENS_CHURN_ACTIVITY=any)"),
])
def test_the_churn_tile_names_the_activity_that_keeps_a_trader(open_page, monkeypatch, setting, named):
    if setting is None:
        monkeypatch.delenv(CHURN_ACTIVITY_ENV, raising=False)
    else:
        monkeypatch.setenv(CHURN_ACTIVITY_ENV, setting)

    assert named in churn_tile(open_page()).help


@pytest.mark.usefixtures("broker_url")
def test_a_bad_churn_activity_is_one_clear_message_on_the_overview(open_page, monkeypatch):
    monkeypatch.setenv(CHURN_ACTIVITY_ENV, "logins")

    at = open_page()

    assert not at.exception
    shown = " ".join(e.value for e in at.error).replace("\\", "")  # the message is shown markdown-escaped
    assert "TRADERLENS_CHURN_ACTIVITY='logins' is not a churn activity setting" in shown


@pytest.mark.usefixtures("broker_url")
def test_the_lifecycle_stages_and_the_funnel_steps_say_what_trading_means(open_page, monkeypatch):
    monkeypatch.delenv(CHURN_ACTIVITY_ENV, raising=False)
    lifecycle = open_page("pages/lifecycle.py")
    assert lifecycle.number_input(key="lifecycle.dormant_days").help == (
        "No trading (a position opened, closed or held) or an approved deposit for this long.")
    assert "(TRADERLENS_CHURN_ACTIVITY)" in " ".join(c.value for c in lifecycle.caption)

    funnels = open_page("pages/funnels.py")
    assert "Trade is the opening of a position" in funnels.multiselect(key="funnels.steps").help
