"""Unfinished retention cells (docs/semantics.md, "Retention"): a cell that has happened but whose period
(cumulative: whose last counted period) ends after the newest day with data can still rise. It is marked
(``complete``, ``records()``) and kept out of the average unless asked. On DuckDB and PostgreSQL, with
the hand-built brokers of test_cohorts.py (weeks W0, W1, … start on Monday 2026-06-01)."""

from __future__ import annotations

import pytest

from analytics.cohorts import compute_retention
from tests.analytics.test_cohorts import Broker, at, spec, week

T, F, N = True, False, None


def _broker(engine, *, last_day: int) -> None:
    """W0 cohort: traders 1, 2 (1 back in W1 and W2). W1 cohort: traders 3, 4, 5 (3 back in W2). W2
    cohort: trader 6, whose signup on weekday ``last_day`` of W2 is the newest event."""
    b = Broker()
    for tid in range(1, 7):
        b.trader(tid)
    b.event(1, "signup", at(0)).event(1, "open_app", at(1), at(2, 0))
    b.event(2, "signup", at(0))
    b.event(3, "signup", at(1)).event(3, "open_app", at(2, 1))
    b.event(4, "signup", at(1)).event(5, "signup", at(1))
    b.event(6, "signup", at(2, last_day, 10))
    b.write(engine)


def test_a_period_still_running_at_the_data_end_is_unfinished_and_left_out_of_the_average(engine):
    _broker(engine, last_day=2)  # the data ends on Wednesday of W2

    result = compute_retention(engine, spec(), date_from=week(0), date_to=week(2))

    assert [r["values"] for r in result.records()] == [[2, 1, 1, N], [3, 1, N, N], [1, N, N, N]]
    # W2 is not over: W0's week 2, W1's week 1 and W2's own size can still rise.
    assert [r["complete"] for r in result.records()] == [[T, T, F, N], [T, F, N, N], [F, N, N, N]]
    assert result.unfinished().values.tolist() == [[F, F, T, F], [F, T, F, F], [T, F, F, F]]
    average = result.average()
    # Week 1: W0's 1 of 2 only, not W1's 1 of 3 so far; week 2: no finished cell yet.
    assert average["cohorts"].tolist() == [2, 1, 0, 0]
    assert average["rate"][1] == 0.5 and average["rate"][2:].isna().all()
    asked = result.average(include_unfinished=True)
    assert asked["cohorts"].tolist() == [3, 2, 1, 0]
    assert asked["rate"][1] == pytest.approx(2 / 5) and asked["rate"][2] == 0.5


def test_a_period_whose_last_day_is_the_data_end_is_finished(engine):
    _broker(engine, last_day=6)  # the data ends on Sunday, W2's last day

    result = compute_retention(engine, spec(), date_from=week(0), date_to=week(2))

    assert [r["complete"] for r in result.records()] == [[T, T, T, N], [T, T, N, N], [T, N, N, N]]
    assert not result.unfinished().values.any()
    assert result.average()["cohorts"].tolist() == [3, 2, 1, 0]


def test_a_cumulative_cell_is_final_once_its_last_counted_period_is_over(engine):
    _broker(engine, last_day=2)
    Broker().trader(7).event(7, "late", at(3, 2)).write(engine)  # the data now ends on Wednesday of W3

    # Range W0-W1: a cumulative row counts returns up to W1's end at most, which is over.
    short = compute_retention(engine, spec(intervals=3, cumulative=True), date_from=week(0), date_to=week(1))
    assert [r["complete"] for r in short.records()] == [[T, T, T], [T, T, T]]
    # Range W0-W3: W1's week 1 (W2) is over, but its row also counts W3, which is not.
    full = compute_retention(engine, spec(intervals=3, cumulative=True), date_from=week(0), date_to=week(3))
    assert [r["values"] for r in full.records()] == [[2, 1, 1], [3, 1, 0], [1, 0, N], [0, N, N]]
    assert [r["complete"] for r in full.records()] == [[T, T, T], [T, F, F], [T, F, N], [F, N, N]]
    plain = compute_retention(engine, spec(intervals=3), date_from=week(0), date_to=week(3))
    assert [r["complete"] for r in plain.records()] == [[T, T, T], [T, T, F], [T, F, N], [F, N, N]]


def test_best_and_worst_cohorts_are_picked_from_finished_cells(engine):
    _broker(engine, last_day=2)
    result = compute_retention(engine, spec(), date_from=week(0), date_to=week(2))

    # Week 1: W1's 1 of 3 so far would be the "worst cohort"; its week is not over, so only W0 counts.
    best, worst = result.extremes(1)
    assert best == worst and (best.cohort_start, best.retained, best.size, best.rate) == (week(0), 1, 2, 0.5)
    best, worst = result.extremes(1, include_unfinished=True)
    assert (best.cohort_start, worst.cohort_start) == (week(0), week(1))
    assert worst.rate == pytest.approx(1 / 3)
    assert result.extremes(2) is None  # no cohort has a finished week 2 yet
