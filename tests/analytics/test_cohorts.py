"""Retention, LTV and engagement on hand-built brokers, each test on DuckDB and PostgreSQL.

The retention cases follow docs/semantics.md ("Retention") rule by rule. Arbitrary event names
come from portal_events ("signup", "open_app"); trades, sessions and transactions make the core
events. Weeks W0, W1, … start on Monday 2026-06-01. A cell whose period starts after the newest
event of the test's data has not happened yet and is None (N) in ``records()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import count

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analytics.cohorts import (
    ALL_COHORTS,
    RetentionSpec,
    compute_engagement_retention,
    compute_ltv,
    compute_retention,
)
from analytics.events import UnknownEvent, check_event_names, list_event_names
from analytics.filters import TraderFilter
from analytics.periods import ReportTooLarge
from connectors import database, schema
from connectors.rollups import refresh_rollups

W0 = date(2026, 6, 1)  # a Monday
N = None  # a cell whose period has not happened yet
_ids = count(1)


def week(i: int) -> date:
    return W0 + timedelta(weeks=i)


def at(i: int, weekday: int = 2, hour: int = 12) -> datetime:
    """A time in week Wi: weekday 0 = Monday … 6 = Sunday."""
    return datetime.combine(week(i) + timedelta(days=weekday), datetime.min.time()) + timedelta(hours=hour)


@dataclass
class Broker:
    """Rows to write, built with one call per fact."""

    traders: list[dict] = field(default_factory=list)
    portal: list[dict] = field(default_factory=list)
    trades: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    txns: list[dict] = field(default_factory=list)

    def trader(self, tid: int, *, registered: datetime | None = datetime(2026, 1, 1), country: str = "DE",
               is_test: bool = False) -> Broker:
        self.traders.append({"trader_id": tid, "external_id": f"T{tid}", "registered_at": registered,
                             "country": country, "is_test": is_test})
        return self

    def event(self, tid: int, name: str, *times: datetime) -> Broker:
        for ts in times:
            n = next(_ids)
            self.portal.append({"portal_event_id": n, "external_id": f"P{n}", "trader_id": tid, "event": name,
                                "occurred_at": ts})
        return self

    def trade(self, tid: int, *times: datetime) -> Broker:
        for ts in times:
            n = next(_ids)
            self.trades.append({"trade_id": n, "external_id": f"D{n}", "trader_id": tid, "symbol": "EURUSD",
                                "side": "buy", "lots": 1, "opened_at": ts, "closed_at": ts + timedelta(hours=1),
                                "open_price": 1.1, "close_price": 1.1, "profit_usd": 0})
        return self

    def login(self, tid: int, *times: datetime) -> Broker:
        for ts in times:
            n = next(_ids)
            self.sessions.append({"session_id": n, "external_id": f"S{n}", "trader_id": tid, "started_at": ts,
                                  "duration_s": 60, "surface": "web"})
        return self

    def txn(self, tid: int, kind: str, ts: datetime, usd: float, status: str = "approved") -> Broker:
        n = next(_ids)
        self.txns.append({"txn_id": n, "external_id": f"X{n}", "trader_id": tid, "kind": kind, "status": status,
                          "amount": usd, "currency": "USD", "amount_usd": usd, "created_at": ts})
        return self

    def write(self, engine) -> None:
        with engine.begin() as conn:
            for table, rows in ((schema.traders, self.traders), (schema.portal_events, self.portal),
                                (schema.trades, self.trades), (schema.sessions, self.sessions),
                                (schema.transactions, self.txns)):
                if rows:
                    database.bulk_insert(conn, table, pd.DataFrame(rows))
            refresh_rollups(conn)  # trading activity (days a position was opened, closed or held) is a rollup


def matrix(result) -> list[list[int]]:
    return [r["values"] for r in result.records()]


def rows(result) -> list[date]:
    return [r["cohort_start"] for r in result.records()]


def spec(**kw) -> RetentionSpec:
    return RetentionSpec(**{"start_event": "signup", "return_event": "open_app", "intervals": 4, **kw})


# -- Retention -------------------------------------------------------------------------------------


def test_column_zero_is_the_cohort_size_and_only_later_returns_count(engine):
    b = Broker()
    for tid in (1, 2, 3, 4, 5):
        b.trader(tid)
    b.event(1, "signup", at(0, 1)).event(1, "open_app", at(0, 3), at(1))  # own week, then W1
    b.event(2, "signup", at(0, 2))                                          # never returns
    b.event(3, "signup", at(0, 4)).event(3, "open_app", at(-1))             # returned before starting
    b.event(4, "signup", at(1, 1)).event(4, "open_app", at(0), at(1, 3))    # before and in own week
    b.event(5, "open_app", at(1))                                           # returns without a start
    b.write(engine)

    result = compute_retention(engine, spec(), date_from=week(0), date_to=week(3) + timedelta(days=2))

    assert rows(result) == [week(0), week(1), week(2), week(3)]
    # The data ends in W1: W2 and W3 have not happened.
    assert matrix(result) == [[3, 1, N, N], [1, N, N, N], [N, N, N, N], [N, N, N, N]]
    assert list(result.counts.columns) == ["cohort_start", "size", 0, 1, 2, 3]
    assert result.counts["size"].tolist() == [3, 1, 0, 0]
    # Column 0 ignores the return event entirely.
    nobody_returns = compute_retention(engine, spec(return_event="trade"), date_from=week(0), date_to=week(3))
    assert matrix(nobody_returns) == [[3, 0, N, N], [1, N, N, N], [N, N, N, N], [N, N, N, N]]


def test_recurring_puts_a_trader_in_every_start_period(engine):
    b = Broker().trader(1)
    b.event(1, "signup", at(0, 1), at(0, 4), at(2)).event(1, "open_app", at(1), at(3))
    b.write(engine)

    result = compute_retention(engine, spec(), date_from=week(0), date_to=week(3))

    assert matrix(result) == [[1, 1, 0, 1], [0, 0, 0, N], [1, 1, N, N], [0, N, N, N]]


def test_first_time_uses_all_history_and_drops_traders_who_started_before_the_range(engine):
    b = Broker()
    for tid in (1, 2, 3):
        b.trader(tid)
    b.event(1, "signup", at(-2), at(1)).event(1, "open_app", at(2))  # first start before the range
    b.event(2, "signup", at(1), at(2)).event(2, "open_app", at(2), at(3))
    b.event(3, "signup", at(2))
    b.write(engine)

    first_time = compute_retention(engine, spec(mode="first_time"), date_from=week(0), date_to=week(3))
    recurring = compute_retention(engine, spec(), date_from=week(0), date_to=week(3))

    assert matrix(first_time) == [[0, 0, 0, 0], [1, 1, 1, N], [1, 0, N, N], [0, N, N, N]]
    assert matrix(recurring) == [[0, 0, 0, 0], [2, 2, 1, N], [2, 1, N, N], [0, N, N, N]]


def test_cumulative_counts_a_trader_once_per_column_up_to_their_last_return(engine):
    b = Broker()
    for tid in (1, 2, 3):
        b.trader(tid).event(tid, "signup", at(0))
    b.event(1, "open_app", at(3))
    b.event(2, "open_app", at(1), at(2))
    b.event(3, "open_app", at(1, 0), at(1, 3), at(1, 5))
    b.write(engine)

    plain = compute_retention(engine, spec(), date_from=week(0), date_to=week(3))
    rolling = compute_retention(engine, spec(cumulative=True), date_from=week(0), date_to=week(3))

    assert matrix(plain)[0] == [3, 2, 1, 1]
    assert matrix(rolling)[0] == [3, 3, 2, 1]
    assert (np.diff(rolling.counts[[0, 1, 2, 3]].to_numpy(), axis=1) <= 0).all()
    assert rolling.percentages.loc[0, [0, 1, 2, 3]].tolist() == pytest.approx([1, 1, 2 / 3, 1 / 3])


def test_date_to_is_snapped_up_to_the_end_of_its_period_and_later_periods_are_padded(engine):
    b = Broker().trader(1).trader(2)
    b.event(1, "signup", at(1, 1)).event(1, "open_app", at(2, 5))  # Saturday after the Monday date_to
    b.event(2, "signup", at(2, 5)).event(2, "open_app", at(3, 0))  # start on that Saturday; return after range
    b.write(engine)

    result = compute_retention(engine, spec(intervals=3), date_to=week(2))  # date_to = Monday of W2

    assert rows(result) == [week(0), week(1), week(2)]
    # W3 lies after the range but not after the data (which ends on W3's Monday): padded with 0. W4 has
    # not happened: empty.
    assert matrix(result) == [[0, 0, 0], [1, 1, 0], [1, 0, N]]
    assert result.last_period == week(2) and result.data_end == week(3)
    assert result.observed().values.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert result.elapsed().values.tolist() == [[True, True, True], [True, True, True], [True, True, False]]


def test_periods_after_the_newest_day_with_data_are_empty_not_zero(engine):
    b = Broker().trader(1).trader(2).trader(3)
    b.event(1, "signup", datetime(2026, 7, 3)).event(1, "open_app", datetime(2026, 8, 5), datetime(2026, 9, 1))
    b.event(2, "signup", datetime(2026, 7, 20))
    b.event(3, "signup", datetime(2026, 9, 2)).event(3, "open_app", datetime(2026, 9, 14, 18))  # the data's last day
    b.write(engine)
    monthly = spec(period="month", intervals=6)

    result = compute_retention(engine, monthly, date_from=date(2026, 7, 1), date_to=date(2026, 9, 14))

    assert result.data_end == date(2026, 9, 14)
    # July's cohort has an August and a September; October to December have not happened: None, not 0.
    assert [r["values"] for r in result.records()] == [[2, 1, 1, N, N, N], [0, 0, N, N, N, N], [1, N, N, N, N, N]]
    assert [r["size"] for r in result.records()] == [2, 0, 1]
    assert result.elapsed().values.tolist() == [[True] * 3 + [False] * 3, [True] * 2 + [False] * 4,
                                                [True] + [False] * 5]
    assert result.counts[3].tolist() == [0, 0, 0]  # the frames keep the query's counts; the masks say what they are
    # The size-weighted average leaves them out instead of averaging in zeros (and the empty August cohort too);
    # September's cells, not over on 09-14, are unfinished: in the average only when asked
    # (test_cohort_completeness.py).
    average = result.average(include_unfinished=True)
    assert average["cohorts"].tolist() == [2, 1, 1, 0, 0, 0]
    assert average["rate"].tolist()[:3] == [1, 1 / 2, 1 / 2] and average["rate"][3:].isna().all()
    # A caller that knows the data's end passes it and saves the read.
    assert compute_retention(engine, monthly, date_from=date(2026, 7, 1), date_to=date(2026, 9, 14),
                             data_end=date(2026, 9, 14)).records() == result.records()

    # A range past the data: a cohort whose own period has not begun is empty from its size on.
    beyond = compute_retention(engine, monthly, date_from=date(2026, 7, 1), date_to=date(2026, 10, 31))
    assert beyond.records()[3] == {"cohort_start": date(2026, 10, 1), "size": None, "values": [N] * 6,
                                   "complete": [N] * 6}
    # New data opens October: a period that has happened but has no return is 0.
    Broker().trader(4).event(4, "signup", datetime(2026, 10, 1, 9)).write(engine)
    later = compute_retention(engine, monthly, date_from=date(2026, 7, 1), date_to=date(2026, 10, 31))
    assert [r["values"] for r in later.records()] == [[2, 1, 1, 0, N, N], [0, 0, 0, N, N, N], [1, 0, N, N, N, N],
                                                      [1, N, N, N, N, N]]


def test_layout_with_and_without_date_from(engine):
    Broker().trader(1).event(1, "signup", at(0)).event(1, "open_app", at(2)).write(engine)

    without = compute_retention(engine, spec(intervals=3), date_to=week(4) + timedelta(days=3))
    assert rows(without) == [week(2), week(3), week(4)]
    with_from = compute_retention(engine, spec(intervals=3), date_from=week(0) + timedelta(days=3),
                                  date_to=week(4) + timedelta(days=3))
    assert rows(with_from) == [week(0), week(1), week(2), week(3), week(4)]
    assert matrix(with_from)[0] == [1, 0, 1]
    at_noon = compute_retention(engine, spec(intervals=3), date_to=at(4, 3, 12))  # the time of day plays no part
    assert matrix(at_noon) == matrix(without) and rows(at_noon) == rows(without)
    two_columns = compute_retention(engine, spec(intervals=2), date_from=week(0), date_to=week(2))
    assert len(two_columns.counts) == 3 and matrix(two_columns)[0] == [1, 0]
    with pytest.raises(ValueError):
        compute_retention(engine, spec(), date_from=week(3), date_to=week(1))


def test_sunday_weeks_give_the_same_counts_on_different_row_dates(engine):
    b = Broker()
    for tid in (1, 2):
        b.trader(tid)
    b.event(1, "signup", at(0, 1)).event(1, "open_app", at(1, 2), at(3, 4))
    b.event(2, "signup", at(1, 3)).event(2, "open_app", at(2, 1))
    b.write(engine)

    kw = {"date_from": week(0) + timedelta(days=2), "date_to": week(3) + timedelta(days=2)}
    monday = compute_retention(engine, spec(), **kw)
    sunday = compute_retention(engine, spec(week_start="sunday"), **kw)

    assert matrix(monday) == matrix(sunday) == [[1, 1, 0, 1], [1, 1, 0, N], [0, 0, N, N], [0, N, N, N]]
    assert rows(sunday) == [d - timedelta(days=1) for d in rows(monday)]


def test_day_and_month_periods(engine):
    b = Broker().trader(1).trader(2)
    b.event(1, "signup", datetime(2026, 6, 1, 10)).event(1, "open_app", datetime(2026, 6, 2, 23, 59),
                                                        datetime(2026, 6, 4, 0, 0))
    b.event(2, "signup", datetime(2026, 1, 31, 23)).event(2, "open_app", datetime(2026, 2, 1, 0, 30),
                                                         datetime(2026, 4, 1))
    b.write(engine)

    daily = compute_retention(engine, spec(period="day", intervals=5), date_from=date(2026, 6, 1),
                              date_to=date(2026, 6, 5))
    assert rows(daily)[0] == date(2026, 6, 1) and matrix(daily)[0] == [1, 1, 0, 1, N]  # the data ends on 06-04
    monthly = compute_retention(engine, spec(period="month"), date_to=date(2026, 4, 10))
    assert rows(monthly) == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)]
    assert matrix(monthly)[0] == [1, 1, 0, 1]


def test_percentages_divide_by_the_cohort_size(engine):
    b = Broker()
    for tid in (1, 2, 3):
        b.trader(tid).event(tid, "signup", at(0))
    b.event(1, "open_app", at(1)).event(2, "open_app", at(1), at(2))
    b.write(engine)

    result = compute_retention(engine, spec(), date_from=week(0), date_to=week(3))

    pct = result.percentages
    assert list(pct.columns) == list(result.counts.columns)
    assert pct.loc[0, [0, 1, 2, 3]].tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert pct.loc[1, [0, 1, 2, 3]].isna().all()  # an empty cohort has no rate, not 0%
    average = result.average(include_unfinished=True)  # W2, where the data ends, is not over
    # Later cohorts are empty and do not dilute W0's rates; column 3 of W0 (W3) lies after the data's
    # last day (in W2), so no cohort has a column 3 yet: no average, not 0%.
    assert average["rate"].tolist()[:3] == pytest.approx([1, 2 / 3, 1 / 3]) and math.isnan(average["rate"][3])
    assert average["cohorts"].tolist() == [1, 1, 1, 0]


def test_the_trader_filter_applies_and_test_accounts_are_left_out_by_default(engine):
    b = Broker().trader(1, country="DE").trader(2, country="GB").trader(3, country="DE", is_test=True)
    for tid in (1, 2, 3):
        b.event(tid, "signup", at(0)).event(tid, "open_app", at(1))
    b.write(engine)

    def sizes(flt: TraderFilter) -> list[int]:
        got = compute_retention(engine, spec(), date_from=week(0), date_to=week(1), trader_filter=flt)
        return matrix(got)[0]

    assert sizes(TraderFilter()) == [2, 2, N, N]
    assert sizes(TraderFilter(countries=("DE",))) == [1, 1, N, N]
    assert sizes(TraderFilter(include_test=True)) == [3, 3, N, N]


def test_core_events_come_from_their_tables(engine):
    b = Broker()
    b.trader(1, registered=at(0, 0)).trade(1, at(1), at(3)).login(1, at(2))
    b.txn(1, "deposit", at(0, 1), 100).txn(1, "deposit", at(0, 3), 50).txn(1, "deposit", at(2), 70)
    b.txn(1, "deposit", at(1), 999, status="declined").txn(1, "withdrawal", at(3), 20)
    b.trader(2, registered=at(1)).login(2, at(1), at(2)).txn(2, "deposit", at(1), 10, status="pending")
    b.write(engine)
    window = {"date_from": week(0), "date_to": week(3)}

    assert matrix(compute_retention(engine, RetentionSpec("registered", "trade", intervals=4), **window)) == [
        [1, 1, 0, 1], [1, 0, 0, N], [0, 0, N, N], [0, N, N, N]]
    assert matrix(compute_retention(engine, RetentionSpec("registered", "login", intervals=4), **window)) == [
        [1, 0, 1, 0], [1, 1, 0, N], [0, 0, N, N], [0, N, N, N]]
    # The FTD is the first approved deposit; the second deposit in W0 is in the cohort's own week.
    assert matrix(compute_retention(engine, RetentionSpec("ftd", "deposit", intervals=4), **window))[0] == [1, 0, 1, 0]
    assert matrix(compute_retention(engine, RetentionSpec("deposit", "withdrawal", intervals=4), **window)) == [
        [1, 0, 0, 1], [0, 0, 0, N], [1, 1, N, N], [0, N, N, N]]
    assert matrix(compute_retention(engine, RetentionSpec("ftd", "deposit_declined", intervals=4), **window))[0] == [
        1, 1, 0, 0]
    assert list_event_names(engine) == ["registered", "deposit", "ftd", "deposit_declined", "withdrawal", "trade",
                                           "login"]


def test_an_empty_database_gives_a_zero_matrix(engine):
    result = compute_retention(engine, RetentionSpec(), date_to=date(2026, 6, 3))
    assert len(result.counts) == 8 and result.counts[list(range(8))].to_numpy().sum() == 0
    assert result.percentages[0].isna().all()
    assert list_event_names(engine) == []


def test_spec_rejects_nonsense():
    with pytest.raises(ValueError):
        RetentionSpec(intervals=0)
    with pytest.raises(ValueError):
        RetentionSpec(period="year")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RetentionSpec(mode="first_ever")  # type: ignore[arg-type]


# -- LTV -------------------------------------------------------------------------------------------


def _ledger(engine) -> None:
    d = lambda month, day, hour=10: datetime(2026, month, day, hour)  # noqa: E731
    b = Broker().trader(1).trader(2, country="GB").trader(3).trader(4)
    b.txn(1, "deposit", d(6, 2), 100)                      # FTD, week of 06-01, age 0
    b.txn(1, "bonus", d(6, 2, 11), 50)                     # bonus: never money in
    b.txn(1, "deposit", d(6, 3), 1000, status="declined")  # declined
    b.txn(1, "deposit", d(6, 4), 500, status="pending")    # pending
    b.txn(1, "deposit", d(6, 10), 200)                     # 8 days after the FTD: age 1
    b.txn(1, "withdrawal", d(6, 16), 80)                   # 14 days: age 2
    b.txn(1, "deposit", d(6, 30), 30)                      # 28 days: age 4, beyond 4 ages
    b.txn(2, "deposit", d(6, 5), 50).txn(2, "withdrawal", d(6, 6), 20)
    b.txn(3, "deposit", d(6, 9), 300)                      # week of 06-08
    b.txn(4, "deposit", d(6, 9), 75, status="declined")    # never deposited: no FTD
    b.write(engine)


def _curve(frame: pd.DataFrame, cohort: str, column: str = "value_per_trader") -> list[float]:
    return frame.loc[frame["cohort"] == cohort, column].tolist()


def test_ltv_sums_net_deposits_by_age_since_ftd(engine):
    _ledger(engine)
    kw = {"period": "week", "ages": 4, "date_from": date(2026, 6, 1), "date_to": date(2026, 7, 31)}

    net = compute_ltv(engine, metric="net_deposits", **kw)
    deposits = compute_ltv(engine, metric="deposits", **kw)

    assert list(net.columns) == ["cohort", "cohort_start", "cohort_size", "age", "value_usd", "value_per_trader"]
    assert _curve(net, "2026-06-01", "value_usd") == pytest.approx([130, 330, 250, 250])
    assert _curve(net, "2026-06-01") == pytest.approx([65, 165, 125, 125])
    assert _curve(net, "2026-06-08") == pytest.approx([300] * 4)
    assert _curve(net, ALL_COHORTS) == pytest.approx([430 / 3, 630 / 3, 550 / 3, 550 / 3])
    assert _curve(deposits, "2026-06-01") == pytest.approx([75, 175, 175, 175])
    assert net.loc[net["cohort"] == "2026-06-01", "cohort_size"].unique().tolist() == [2]


def test_ltv_shows_an_age_only_for_cohorts_old_enough_and_applies_the_filter(engine):
    _ledger(engine)
    # Data ends 07-05: the 06-08 cohort (members up to 06-14) has lived 3 full weeks, the 06-01 one 4.
    net = compute_ltv(engine, period="week", ages=4, metric="net_deposits", date_from=date(2026, 6, 1),
                      date_to=date(2026, 7, 5))
    assert _curve(net, "2026-06-08") == pytest.approx([300] * 3)
    pooled = net[net["cohort"] == ALL_COHORTS]
    assert pooled["cohort_size"].tolist() == [3, 3, 3, 2]
    assert pooled["value_per_trader"].tolist()[-1] == pytest.approx(125)

    de_only = compute_ltv(engine, period="week", ages=4, metric="net_deposits", date_from=date(2026, 6, 1),
                          date_to=date(2026, 7, 31), trader_filter=TraderFilter(countries=("DE",)))
    assert _curve(de_only, "2026-06-01", "value_usd") == pytest.approx([100, 300, 220, 220])
    assert compute_ltv(engine, period="week", ages=4, date_from=date(2027, 1, 1), date_to=date(2027, 2, 1)).empty


# -- Engagement ------------------------------------------------------------------------------------


def test_engagement_buckets_wilson_intervals_and_relative_risk(engine):
    ftd = datetime(2026, 1, 5, 12)
    day = lambda n, hours=0.0: ftd + timedelta(days=n, hours=hours)  # noqa: E731
    b = Broker()
    # (trader, early logins, retained): low group 1 of 5 retained, high group 3 of 4.
    plan = [(1, 0, True), (2, 0, False), (3, 4, False), (4, 9, False), (5, 9, False),
            (6, 10, True), (7, 10, True), (8, 10, False), (9, 25, True)]
    for tid, logins, kept in plan:
        b.trader(tid).txn(tid, "deposit", ftd, 100)
        b.login(tid, *(day(i % 29, 1) for i in range(logins)))
        # Just outside the window on both sides: the first position (an hour long) closes 6 minutes before
        # day 90 (a close at day 90 would be trading in the window), the second opens at day 120.
        b.trade(tid, day(89, 22.9), day(120))
        if kept:
            b.trade(tid, day(119, 23.9))
    b.login(4, day(-1), day(30), day(31))  # before the FTD and after day 30: not early sessions
    b.trader(10).txn(10, "deposit", datetime(2026, 5, 1), 100).login(10, *(day(i) for i in range(12)))  # too recent
    b.write(engine)

    result = compute_engagement_retention(engine, date_to=date(2026, 6, 30))

    assert result.buckets["bucket"].tolist() == ["0-2", "3-5", "6-9", "10-19", "20+"]
    assert result.buckets["traders"].tolist() == [2, 1, 2, 3, 1]
    assert result.buckets["retained"].tolist() == [1, 0, 0, 2, 1]
    assert (result.n_high, result.retained_high, result.n_low, result.retained_low) == (4, 3, 5, 1)
    assert result.rr == pytest.approx(3.75)
    se = math.sqrt(1 / 3 - 1 / 4 + 1 / 1 - 1 / 5)
    assert (result.rr_low, result.rr_high) == pytest.approx((3.75 * math.exp(-1.959964 * se),
                                                            3.75 * math.exp(1.959964 * se)), rel=1e-5)
    ten = result.buckets.iloc[3]
    wilson = stats.binomtest(2, 3).proportion_ci(method="wilson")
    assert (ten["rate_low"], ten["rate_high"]) == pytest.approx((wilson.low, wilson.high))
    assert (ten["rate_low"], ten["rate_high"]) == pytest.approx((0.2077, 0.9385), abs=1e-4)
    assert "correlation" in result.definition()

    # A lower threshold moves the split (and adds a bucket edge at it).
    five = compute_engagement_retention(engine, threshold=5, date_to=date(2026, 6, 30))
    assert five.buckets["bucket"].tolist() == ["0-2", "3-4", "5", "6-9", "10-19", "20+"]
    assert (five.n_high, five.n_low) == (6, 3)


def test_retention_refuses_more_cohorts_or_cells_than_the_shared_limits(engine):
    Broker().trader(1).event(1, "signup", at(0)).write(engine)

    with pytest.raises(ReportTooLarge, match="daily cohorts is more than the limit of 3,660"):
        compute_retention(engine, spec(period="day"), date_from=date(2000, 1, 1), date_to=week(0))
    with pytest.raises(ReportTooLarge, match=r"x 400 intervals = .* cells is more than the limit of 250,000"):
        compute_retention(engine, spec(period="day", intervals=400), date_from=date(2024, 6, 1), date_to=week(0))
    assert len(rows(compute_retention(engine, spec(period="day", intervals=60), date_from=week(0) - timedelta(
        days=547), date_to=week(0)))) == 548  # the demo's span by day, the pages' largest matrix


def test_unknown_event_names_are_refused_with_the_names_the_database_has(engine):
    Broker().trader(1).event(1, "signup", at(0)).event(1, "open_app", at(1)).write(engine)

    check_event_names(engine, ["signup", "registered", "signup"])
    with pytest.raises(UnknownEvent) as refused:
        check_event_names(engine, ["signup", "sigup", "' OR 1=1 --", "a\x00\nb"])

    assert refused.value.unknown == ("sigup", "' OR 1=1 --", "a\x00\nb")
    assert refused.value.known == tuple(list_event_names(engine)) == ("registered", "open_app", "signup")
    assert str(refused.value) == ("unknown events 'sigup', \"' OR 1=1 --\", 'a\\x00\\nb'; "
                                  "the events in the database are: registered, open_app, signup")
