"""Global filters and periods: the same trader set and period starts on both backends."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.events import compute_data_span
from analytics.filters import EVERYONE, TraderFilter, compute_filter_options
from analytics.periods import (
    MAX_PERIODS,
    DateRange,
    ReportTooLarge,
    add_months,
    check_report_size,
    comparison_range,
    count_periods,
    index_of,
    index_of_times,
    interval,
    period_index,
    period_start,
    period_starts,
    start_of_index,
    step_period,
    truncate_date,
)
from connectors import database, schema


def _traders(conn) -> None:
    database.bulk_insert(conn, schema.traders, pd.DataFrame({
        "trader_id": [1, 2, 3, 4], "external_id": ["a", "b", "c", "d"],
        "registered_at": [datetime(2026, 3, 1, 10)] * 4,
        "country": ["DE", "GB", "DE", "ZA"], "acquisition_channel": ["social", "organic", "affiliate", "social"],
        "affiliate_id": [None, None, "IB7", None], "vip_tier": [None, "gold", None, None],
        "is_test": [False, False, False, True],
    }))
    database.bulk_insert(conn, schema.accounts, pd.DataFrame({
        "account_id": [1, 2, 3], "external_id": ["x", "y", "z"], "trader_id": [1, 3, 4],
        "platform": ["MT4", "cTrader", "MT5"], "login": ["1", "2", "3"], "currency": ["USD"] * 3,
        "is_demo": [False] * 3, "opened_at": [datetime(2026, 3, 2)] * 3,
    }))


@pytest.mark.parametrize("flt, expected", [
    (TraderFilter(), {1, 2, 3}),
    (EVERYONE, {1, 2, 3, 4}),
    (TraderFilter(countries=("DE",)), {1, 3}),
    (TraderFilter(channels=("social",), include_test=True), {1, 4}),
    (TraderFilter(affiliates=("IB7",)), {3}),
    (TraderFilter(platforms=("cTrader", "MT4")), {1, 3}),
    (TraderFilter(vip_tiers=("gold",)), {2}),
    (TraderFilter(vip_tiers=("standard",)), {1, 3}),
    (TraderFilter(countries=("DE",), platforms=("MT4",)), {1}),
])
def test_trader_filter_keeps_the_right_traders(engine, flt, expected):
    with engine.begin() as conn:
        _traders(conn)
    with engine.connect() as conn:
        kept = {r[0] for r in conn.execute(sa.select(schema.traders.c.trader_id)
                                           .where(flt.restrict(schema.traders.c.trader_id)))}
    assert kept == expected


@pytest.mark.parametrize("flt, expected", [
    (TraderFilter(), {1, 3}),  # the default: an anti-join against the test accounts
    (EVERYONE, {1, 3, 4}),
    (TraderFilter(countries=("DE",)), {1, 3}),
    (TraderFilter(countries=("ZA",), include_test=True), {4}),
])
def test_trader_filter_restricts_the_rows_of_another_table(engine, flt, expected):
    with engine.begin() as conn:
        _traders(conn)
    accounts = schema.accounts
    with engine.connect() as conn:
        kept = {r[0] for r in conn.execute(sa.select(accounts.c.trader_id).where(flt.restrict(accounts.c.trader_id)))}
        # Inside a join with traders too: the filter's own reading of traders stays separate.
        joined = {r[0] for r in conn.execute(
            sa.select(schema.traders.c.trader_id).join(accounts, accounts.c.trader_id == schema.traders.c.trader_id)
            .where(flt.restrict(accounts.c.trader_id)))}
    assert kept == expected and joined == expected


def test_filter_options_and_data_span_come_from_the_data(engine):
    assert compute_data_span(engine) is None
    with engine.begin() as conn:
        _traders(conn)
    options = compute_filter_options(engine)
    assert options.countries == ("DE", "GB", "ZA") and options.platforms == ("MT4", "MT5", "cTrader")
    assert options.vip_tiers == ("standard", "gold") and options.affiliates == ("IB7",)
    assert compute_data_span(engine) == DateRange(date(2026, 3, 1), date(2026, 3, 1))


@pytest.mark.parametrize("period, week_start, expected", [
    ("day", "monday", datetime(2026, 11, 29)),
    ("week", "monday", datetime(2026, 11, 23)),
    ("week", "sunday", datetime(2026, 11, 29)),
    ("month", "monday", datetime(2026, 11, 1)),
])
def test_period_start_in_sql_matches_python(engine, period, week_start, expected):
    ts = sa.literal(datetime(2026, 11, 29, 15, 30), sa.DateTime)  # a Sunday
    with engine.connect() as conn:
        got = conn.execute(sa.select(period_start(ts, period, week_start))).scalar_one()
    assert got == expected
    assert truncate_date(date(2026, 11, 29), period, week_start) == expected.date()


PERIOD_CASES = [(period, week_start) for period in ("day", "week", "month") for week_start in ("monday", "sunday")]
INSTANTS = [datetime(1969, 12, 28, 23, 59), datetime(1970, 1, 1), datetime(2026, 2, 28, 23, 59, 59),
            datetime(2026, 3, 1), datetime(2026, 11, 29, 15, 30), datetime(2026, 11, 30, 0, 0, 1)]


@pytest.mark.parametrize("period, week_start", PERIOD_CASES)
def test_period_numbers_agree_in_sql_python_and_numpy(engine, period, week_start):
    # One numbering of periods for every analysis: the SQL expression, the Python and the array forms.
    with engine.connect() as conn:
        in_sql = [conn.execute(sa.select(period_index(sa.literal(ts, sa.DateTime), period, week_start))).scalar_one()
                  for ts in INSTANTS]
    in_python = [index_of(ts.date(), period, week_start) for ts in INSTANTS]
    us = np.array([int((ts - datetime(1970, 1, 1)).total_seconds()) * 1_000_000 for ts in INSTANTS], dtype=np.int64)
    assert in_sql == in_python == index_of_times(us, period, week_start).tolist()
    for ts, index in zip(INSTANTS, in_python, strict=True):
        assert start_of_index(index, period, week_start) == truncate_date(ts.date(), period, week_start)


def test_period_starts_months_and_comparison_ranges():
    march = DateRange(date(2026, 3, 4), date(2026, 3, 31))
    assert period_starts(march, "week") == [date(2026, 3, d) for d in (2, 9, 16, 23, 30)]
    assert period_starts(march, "week", "sunday") == [date(2026, 3, d) for d in (1, 8, 15, 22, 29)]
    assert period_starts(DateRange(date(2025, 12, 31), date(2026, 2, 1)), "month") == [
        date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2026, 1, 15), -13) == date(2024, 12, 15)
    assert comparison_range(march, "week") == (DateRange(date(2026, 1, 28), date(2026, 2, 24)), 5)  # 5 weeks back
    with pytest.raises(ValueError):
        interval(3, "weeks")


def test_date_range_previous_and_steps():
    rng = DateRange(date(2026, 11, 1), date(2026, 11, 30))
    assert rng.previous() == DateRange(date(2026, 10, 2), date(2026, 10, 31))
    assert rng.end_ts == datetime(2026, 12, 1)
    assert step_period(date(2026, 11, 15), "month", 2) == date(2027, 1, 1)
    assert step_period(date(2026, 11, 29), "week", 1, "sunday") == date(2026, 12, 6)
    with pytest.raises(ValueError):
        DateRange(date(2026, 2, 1), date(2026, 1, 1))


def test_count_periods_counts_the_periods_of_both_ends():
    assert count_periods(date(2026, 3, 2), date(2026, 3, 2), "day") == 1
    assert count_periods(date(2026, 1, 31), date(2026, 3, 1), "month") == 3
    assert count_periods(date(2026, 3, 8), date(2026, 3, 9), "week") == 2  # a Sunday, then a Monday
    assert count_periods(date(2026, 3, 8), date(2026, 3, 9), "week", "sunday") == 1
    assert count_periods(date(2026, 3, 9), date(2026, 3, 8), "day") == 0


def test_report_size_limits_name_the_limit_and_what_to_change():
    # The demo's 548 days as daily cohorts with the pages' 60 intervals stay within the limits.
    check_report_size(548, period="day", what="cohorts", columns=60, column_name="intervals")
    check_report_size(MAX_PERIODS, period="day", what="periods")
    with pytest.raises(ReportTooLarge, match=r"^3,661 daily periods is more than the limit of 3,660: shorten"):
        check_report_size(MAX_PERIODS + 1, period="day", what="periods")
    with pytest.raises(ReportTooLarge, match=r"700 daily cohorts x 400 intervals = 280,000 cells is more than the "
                                             r"limit of 250,000: .* or fewer intervals$"):
        check_report_size(700, period="day", what="cohorts", columns=400, column_name="intervals")
