"""The Cohorts page marks unfinished retention cells and leaves them out of its averages unless the
"Include unfinished periods" toggle (?cohorts.unfinished=true) is on. A simulated broker whose data
ends on Tuesday 17 November 2026, so that week and month are not over."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from analytics.cohorts import RetentionResult, RetentionSpec, compute_retention
from analytics.events import compute_data_span
from connectors import database
from connectors.simulator import SimulationConfig

BROKER = SimulationConfig(traders=400, days=240, seed=5, end=date(2026, 11, 18))  # end is exclusive


@pytest.fixture
def db_url(use_broker, seeded_broker) -> str:
    return use_broker(seeded_broker(BROKER))


def _expected(db_url: str) -> RetentionResult:
    """compute_retention as the page's default view computes it: FTD -> trade, weekly, the last 90 days."""
    engine = database.get_engine(db_url)
    span = compute_data_span(engine)
    assert span.end == date(2026, 11, 17)
    return compute_retention(engine, RetentionSpec("ftd", "trade"), date_from=span.end - timedelta(days=89),
                             date_to=span.end)


def _rate(value: float) -> str:
    return f"{value:.1%}"


def test_unfinished_cells_are_marked_everywhere_and_left_out_of_the_averages(db_url, open_page, downloaded):
    want = _expected(db_url)
    unfinished = want.unfinished()
    # The week of 16 November is not over: the last cohort's size and the cell before it, among others.
    assert unfinished.to_numpy().any()
    final, everything = want.average(), want.average(include_unfinished=True)
    assert final.loc[1, "rate"] != everything.loc[1, "rate"]

    at = open_page("pages/cohorts.py")

    assert at.toggle(key="cohorts.unfinished").value is False
    tiles = {m.label: m for m in at.metric}
    assert tiles["Back in week 1"].value == _rate(final.loc[1, "rate"])
    assert "unfinished weeks are left out" in tiles["Back in week 1"].help
    table = at.get_by_key("cohorts.table").dataframe[0].value
    names = [f"Week {k}" for k in want.columns]
    marked = table[names].apply(lambda col: col.str.endswith("*")).to_numpy()
    assert (marked == unfinished.to_numpy()).all()
    assert any("unfinished: their week is not over on 17 Nov 2026" in c.value for c in at.caption)
    # Best and worst cohort at the latest week two finished cohorts have.
    k = max(int(k) for k in final.loc[final["cohorts"] >= 2, "interval"] if k >= 1)
    best, worst = want.extremes(k)
    summary = next(c.value for c in at.caption if "best cohort" in c.value)
    assert summary.startswith(f"Week {k}: best cohort week of {best.cohort_start:%d %b %Y} ({best.rate:.1%} of "
                              f"{best.size:,}), worst week of {worst.cohort_start:%d %b %Y} ({worst.rate:.1%}")
    assert summary.endswith("finished periods only.")
    rows = list(csv.DictReader(io.StringIO(downloaded(at, "cohorts.table.download"))))
    complete = want.complete()
    assert [r["cohort_complete"] for r in rows] == [str(v) for v in complete[0]]
    shown = want.observed()[1] & (want.counts["size"] > 0)  # blank after the range and in empty cohorts
    assert [r["week_1_complete"] for r in rows] == [str(c) if o else "" for c, o in zip(complete[1], shown,
                                                                                          strict=True)]

    at.toggle(key="cohorts.unfinished").set_value(True).run()
    assert {m.label: m.value for m in at.metric}["Back in week 1"] == _rate(everything.loc[1, "rate"])


def test_a_link_with_the_toggle_on_opens_with_unfinished_cells_in_the_averages(db_url, open_linked):
    everything = _expected(db_url).average(include_unfinished=True)

    at = open_linked("pages/cohorts.py", {"cohorts.unfinished": "true"})

    assert not at.exception, at.exception
    assert at.toggle(key="cohorts.unfinished").value is True
    assert {m.label: m.value for m in at.metric}["Back in week 1"] == _rate(everything.loc[1, "rate"])

