"""A link's query parameters are checked before any widget sees them: a bad one is dropped with a notice
that names it, a good one is kept, and no value crashes a page (``?cohorts.intervals=inf`` used to)."""

from __future__ import annotations

from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from connectors.simulator import SimulationConfig

NOTICE = "Some of the link's settings were ignored"


@pytest.fixture(autouse=True)
def broker(seeded_broker, use_broker) -> None:
    """The simulated broker (300 traders over 90 days ending 1 Nov 2026) as every test's app database."""
    use_broker(seeded_broker(SimulationConfig(traders=300, days=90, seed=3, end=date(2026, 11, 1))))


def notices(at: AppTest) -> list[str]:
    """The notices' text as a reader sees it (the Markdown escapes removed)."""
    return [w.value.replace("\\", "") for w in at.warning if w.proto.title == NOTICE]


TITLES = {"pages/overview.py": "Overview", "pages/cohorts.py": "Cohorts & retention",
          "pages/funnels.py": "Funnels & conversion", "pages/lifecycle.py": "Lifecycle"}

BAD = [
    ("pages/cohorts.py", "cohorts.intervals", "inf"),
    ("pages/cohorts.py", "cohorts.threshold", "inf"),
    ("pages/funnels.py", "funnels.window_value", "1e309"),
    ("pages/lifecycle.py", "lifecycle.dormant_days", "inf"),
    ("pages/cohorts.py", "cohorts.intervals", "nan"),
    ("pages/cohorts.py", "cohorts.intervals", "99"),
    ("pages/cohorts.py", "cohorts.intervals", "2.5"),
    ("pages/cohorts.py", "cohorts.intervals", "-99999999999999999999999"),
    ("pages/cohorts.py", "cohorts.start", "' OR 1=1 --"),
    ("pages/cohorts.py", "cohorts.cumulative", "maybe"),
    ("pages/funnels.py", "funnels.order", "sideways"),
    ("pages/funnels.py", "funnels.property", "x" * 500),  # shown with an event-property breakdown (below)
    ("pages/lifecycle.py", "lifecycle.churn_days", "7"),
    ("pages/overview.py", "overview.metric", "<script>"),
    ("pages/overview.py", "period", "Last 9999 days"),
    ("pages/overview.py", "country", "ZZ"),
    ("pages/overview.py", "test", "nan"),
]


@pytest.mark.parametrize(("page", "key", "value"), BAD)
def test_a_bad_parameter_is_dropped_with_a_notice_naming_it(page, key, value, open_linked):
    extra = {"funnels.breakdown_kind": "Event property"} if key == "funnels.property" else {}
    at = open_linked(page, {key: value, **extra})
    assert not at.exception
    assert at.title[0].value == TITLES[page]
    shown = notices(at)
    assert len(shown) == 1 and key in shown[0], shown
    assert key not in at.query_params


def test_a_bad_from_date_in_a_custom_period_is_dropped_and_the_range_stays_inside_the_data(open_linked):
    at = open_linked("pages/overview.py", {"period": "Custom", "from": "0002-01-01", "to": "9999-12-31"})
    assert not at.exception
    shown = notices(at)
    assert len(shown) == 1 and "?from= '0002-01-01'" in shown[0] and "?to= '9999-12-31'" in shown[0]
    assert at.query_params["period"] == "Custom"


def test_good_parameters_are_kept_and_used(open_linked):
    at = open_linked("pages/cohorts.py", {"cohorts.intervals": "12", "cohorts.period": "Day",
                                         "cohorts.cumulative": "true"})
    assert not at.exception and not notices(at)
    assert at.session_state["cohorts.intervals"] == 12
    assert at.session_state["cohorts.period"] == "day"
    assert at.session_state["cohorts.cumulative"] is True


def test_a_multiselect_keeps_its_known_values_and_names_the_unknown_one(open_linked):
    at = open_linked("pages/overview.py", {"country": ["DE", "Atlantis"]})
    assert not at.exception
    shown = notices(at)
    assert len(shown) == 1 and "Atlantis" in shown[0] and "'DE'" not in shown[0]
    assert at.session_state["country"] == ["DE"]


def test_every_page_survives_every_parameter_set_to_infinity(open_linked):
    """Every bound key of every page at once, each set to a value no widget can take."""
    keys = {"pages/overview.py": ["overview.metric", "overview.period", "overview.compare", "overview.breakdown",
                                  "overview.rank", "period", "country", "channel", "affiliate", "platform", "vip",
                                  "test"],
            "pages/cohorts.py": ["cohorts.start", "cohorts.return", "cohorts.period", "cohorts.intervals",
                                 "cohorts.mode", "cohorts.show", "cohorts.cumulative", "cohorts.unfinished",
                                 "cohorts.threshold", "cohorts.activity"],
            "pages/funnels.py": ["funnels.steps", "funnels.order", "funnels.window_value", "funnels.window_unit",
                                 "funnels.exclude", "funnels.breakdown_kind", "funnels.trend_period",
                                 "funnels.dropoff_step", "funnels.dropoff_status"],
            "pages/lifecycle.py": ["lifecycle.event", "lifecycle.period", "lifecycle.basis", "lifecycle.week_start",
                                   "lifecycle.churn_days", "lifecycle.dormant_days", "lifecycle.span",
                                   "lifecycle.changes_only"]}
    for page, names in keys.items():
        at = open_linked(page, dict.fromkeys(names, "inf"))
        assert not at.exception, page
        assert at.title[0].value == TITLES[page]
        assert notices(at), page
