"""Unordered funnels, time to convert, conversion trends and drop-off lists from the rules of
docs/semantics.md ("Funnels"), on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from analytics.funnels import (
    DROPOFF_COLUMNS,
    Exclusion,
    FunnelRejected,
    FunnelSpec,
    compute_dropoffs,
    compute_funnel,
    compute_funnel_trends,
    compute_time_to_convert,
    dropoffs_of,
    time_to_convert_of,
)
from analytics.periods import DateRange, ReportTooLarge
from tests.analytics.test_funnels import DAY, HOUR, at, counts, load, run, times


def test_unordered_steps_may_happen_in_any_order(engine):
    load(engine, {
        1: [("C", 0), ("A", 60), ("B", 120)],
        2: [("B", 0), ("A", 60)],
        3: [("C", 0)],
        4: [("A", 0), ("A", 60)],  # the same step twice is still one step
    })

    steps = run(engine, "A", "B", "C", order="unordered")

    assert steps["event"].tolist() == ["Completed 1 step", "Completed 2 steps", "Completed 3 steps"]
    assert counts(steps) == [4, 2, 1]
    assert times(steps) == [None, 60.0, 60.0]


def test_unordered_window_slides_with_the_newest_event(engine):
    load(engine, {1: [("A", 0), ("B", 2 * HOUR), ("C", 2 * HOUR + 1800)]})

    steps = run(engine, "A", "B", "C", order="unordered", window_s=HOUR)

    assert counts(steps) == [1, 1, 0]
    assert times(steps) == [None, 1800.0, None]  # B and C share a window; A fell out of it


def test_unordered_exclusion_wipes_progress_but_keeps_the_trader(engine):
    load(engine, {
        1: [("A", 0), ("B", 60), ("C", 120), ("X", 180), ("D", 240)],  # 3 of 5, wiped, then 1 more
        2: [("A", 0), ("B", 60), ("C", 120), ("D", 180), ("E", 240), ("X", 300)],  # complete before X
        3: [("A", 0), ("X", 60), ("B", 120)],
    })

    steps = run(engine, "A", "B", "C", "D", "E", order="unordered", exclusions=(Exclusion("X", 0, 4),))

    assert counts(steps) == [3, 1, 1, 1, 1]


def test_unordered_conversion_times_come_from_the_first_completion(engine):
    load(engine, {
        1: [("signup", datetime(2021, 5, 2))],
        2: [("pageview", datetime(2021, 5, 2)), ("signup", datetime(2021, 5, 2, 1))],
        3: [("insight", datetime(2021, 5, 2)), ("signup", datetime(2021, 5, 2, 2)),
            ("pageview", datetime(2021, 5, 2, 4)), ("pageview", datetime(2021, 5, 3)),
            ("insight", datetime(2021, 5, 3, 3)), ("signup", datetime(2021, 5, 3, 6))],
    })

    steps = run(engine, "signup", "pageview", "insight", order="unordered", window_s=DAY)

    assert counts(steps) == [3, 2, 1]
    assert times(steps) == [None, 5400.0, 7200.0]


def test_time_to_convert_is_a_prebinned_histogram_of_per_trader_times(engine):
    load(engine, {1: [("A", 0), ("B", 60)], 2: [("A", 0), ("B", 360)], 3: [("A", 0)], 4: [("A", 0), ("B", 0)]})
    spec = FunnelSpec(("A", "B"))

    histogram = compute_time_to_convert(engine, spec, bins=6)

    assert list(histogram.columns) == ["bin_start_s", "bin_end_s", "traders"]
    assert histogram["traders"].sum() == 3  # zero-second conversions are in the histogram
    assert histogram["bin_start_s"].iloc[0] == 0
    assert histogram["bin_end_s"].iloc[-1] >= 360
    assert histogram.attrs["traders"] == 3
    assert histogram.attrs["average_s"] == pytest.approx(140.0)
    assert histogram.attrs["median_s"] == 60.0
    same = time_to_convert_of(compute_funnel(engine, spec), bins=6)
    pd.testing.assert_frame_equal(same, histogram)


def test_time_to_convert_mean_matches_the_spec_example(engine):
    load(engine, {1: [("A", 0), ("B", 30), ("C", 60)], 2: [("A", 0), ("B", 100), ("C", 360)]})

    histogram = compute_time_to_convert(engine, FunnelSpec(("A", "B", "C")), bins=3)
    between = compute_time_to_convert(engine, FunnelSpec(("A", "B", "C")), from_step=2, to_step=3)

    assert histogram.attrs["average_s"] == 210.0  # [60, 360]
    assert list(histogram["traders"]) == [1, 0, 1]
    assert between.attrs["average_s"] == (30 + 260) / 2
    with pytest.raises(FunnelRejected, match="later one"):
        compute_time_to_convert(engine, FunnelSpec(("A", "B", "C")), from_step=3, to_step=2)


def test_time_to_convert_with_nobody_converted_is_empty(engine):
    load(engine, {1: [("A", 0)]})

    histogram = compute_time_to_convert(engine, FunnelSpec(("A", "B")))

    assert histogram.empty
    assert histogram.attrs == {"traders": 0, "average_s": None, "median_s": None}


TREND_JOURNEYS = {
    1: [("one", datetime(2021, 5, 1, 10)), ("two", datetime(2021, 5, 1, 11)), ("three", datetime(2021, 5, 1, 12))],
    2: [("one", datetime(2021, 5, 2, 10)), ("two", datetime(2021, 5, 2, 11))],
    3: [("one", datetime(2021, 5, 6, 10))],
    # Reverse order: entered on 05-03, never converted.
    4: [("three", datetime(2021, 5, 1, 10)), ("two", datetime(2021, 5, 2, 10)), ("one", datetime(2021, 5, 3, 10))],
    # Two complete runs on one day count once.
    5: [("one", datetime(2021, 5, 1, 1)), ("two", datetime(2021, 5, 1, 2)), ("three", datetime(2021, 5, 1, 3)),
        ("one", datetime(2021, 5, 1, 4)), ("two", datetime(2021, 5, 1, 5)), ("three", datetime(2021, 5, 1, 6))],
    # Entered on 05-01 (not converted within a day of it) and again on 05-03 (converted).
    6: [("one", datetime(2021, 5, 1, 0)), ("one", datetime(2021, 5, 3, 0)), ("two", datetime(2021, 5, 3, 1)),
        ("three", datetime(2021, 5, 3, 2))],
    7: [("one", datetime(2021, 5, 4, 10)), ("two", datetime(2021, 5, 4, 11)), ("three", datetime(2021, 5, 4, 12))],
    8: [("one", datetime(2021, 5, 4, 10))],
    9: [("one", datetime(2021, 5, 4, 10))],
}


def test_trends_count_traders_by_the_period_they_entered(engine):
    load(engine, TREND_JOURNEYS)

    trends = compute_funnel_trends(engine, FunnelSpec(("one", "two", "three"), window_s=DAY), period="day",
                                   date_range=DateRange(date(2021, 5, 1), date(2021, 5, 7)))

    assert list(trends.columns) == ["period_start", "reached_from_step_count", "reached_to_step_count",
                                    "conversion_rate"]
    assert trends["period_start"].dt.date.tolist() == [date(2021, 5, d) for d in range(1, 8)]
    assert trends["reached_from_step_count"].tolist() == [3, 1, 2, 3, 0, 1, 0]
    assert trends["reached_to_step_count"].tolist() == [2, 0, 1, 1, 0, 0, 0]
    assert trends["conversion_rate"].tolist() == pytest.approx([2 / 3, 0.0, 0.5, 1 / 3, 0.0, 0.0, 0.0])


def test_weekly_trends_start_weeks_on_the_chosen_day(engine):
    load(engine, {1: [("one", datetime(2021, 5, 1)), ("two", datetime(2021, 5, 1, 1))],  # a Saturday
                  2: [("one", datetime(2021, 5, 2))]})  # a Sunday
    spec = FunnelSpec(("one", "two"))
    window = DateRange(date(2021, 5, 1), date(2021, 5, 7))

    monday = compute_funnel_trends(engine, spec, period="week", date_range=window)
    sunday = compute_funnel_trends(engine, spec, period="week", date_range=window, week_start="sunday")

    assert monday["period_start"].dt.date.tolist() == [date(2021, 4, 26), date(2021, 5, 3)]
    assert monday["reached_from_step_count"].tolist() == [2, 0]
    assert sunday["period_start"].dt.date.tolist() == [date(2021, 4, 25), date(2021, 5, 2)]
    assert sunday["reached_from_step_count"].tolist() == [1, 1]
    assert sunday["conversion_rate"].tolist() == [1.0, 0.0]


def test_trends_refuse_more_periods_than_the_shared_limit(engine):
    load(engine, {1: [("one", datetime(2021, 5, 1)), ("two", datetime(2021, 5, 1, 1))]})

    with pytest.raises(ReportTooLarge, match="daily periods is more than the limit of 3,660"):
        compute_funnel_trends(engine, FunnelSpec(("one", "two")), period="day",
                              date_range=DateRange(date(2000, 1, 1), date(2021, 5, 7)))


def test_trends_reject_unordered_funnels(engine):
    with pytest.raises(FunnelRejected, match="ordered or strict"):
        compute_funnel_trends(engine, FunnelSpec(("one", "two"), order="unordered"))


def test_dropoffs_list_who_reached_a_step_but_not_the_next(engine):
    load(engine, {1: [("A", 0)], 2: [("A", 0), ("B", HOUR)], 3: [("A", 0), ("B", 60), ("C", 120)],
                  4: [("A", 2 * HOUR)]},
         people={1: {"country": "GB", "acquisition_channel": "affiliate"}})
    spec = FunnelSpec(("A", "B", "C"))

    at_one = compute_dropoffs(engine, spec, step=1).people
    at_two = compute_dropoffs(engine, spec, step=2).people

    assert list(at_one.columns) == DROPOFF_COLUMNS
    assert at_one["trader_id"].tolist() == [4, 1]  # most recent first
    assert at_one["external_id"].tolist() == ["EXT-4", "EXT-1"]
    assert at_one["country"].tolist() == ["DE", "GB"]
    assert at_one["acquisition_channel"].tolist() == ["organic", "affiliate"]
    assert at_one["reached_at"].tolist() == [at(2 * HOUR), at(0)]
    assert at_two[["trader_id", "reached_at"]].values.tolist() == [[2, at(HOUR)]]
    pd.testing.assert_frame_equal(dropoffs_of(engine, compute_funnel(engine, spec), step=2).people, at_two)
    with pytest.raises(FunnelRejected, match="from 1 to 2"):
        compute_dropoffs(engine, spec, step=3)


def test_dropoffs_carry_the_breakdown_value(engine):
    load(engine, {1: [("A", 0)], 2: [("A", 0)]}, people={2: {"country": "GB"}})

    frame = compute_dropoffs(engine, FunnelSpec(("A", "B"), breakdown="country"), step=1).people

    assert dict(zip(frame["trader_id"], frame["breakdown_value"], strict=True)) == {1: "DE", 2: "GB"}


def test_no_dropoffs_is_an_empty_frame_with_the_columns(engine):
    frame = compute_dropoffs(engine, FunnelSpec(("A", "B")), step=1).people

    assert frame.empty
    assert list(frame.columns) == DROPOFF_COLUMNS
