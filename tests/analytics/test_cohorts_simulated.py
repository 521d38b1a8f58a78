"""Retention on a small simulated broker against a plain pandas reading of the specification.

The reference below works on raw ``trader_events`` rows (fine for a few thousand events) and
follows the retention rules of docs/semantics.md literally, cell by cell.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.cohorts import RetentionSpec, compute_retention
from analytics.events import TRADING, event_select, list_event_names
from analytics.filters import TraderFilter
from analytics.periods import step_period, truncate_date
from connectors.schema import CORE_EVENTS, trader_events, traders, trades
from connectors.simulator import SimulationConfig, seed_database

END = date(2026, 6, 1)


@pytest.fixture
def broker(engine) -> sa.Engine:
    seed_database(engine, SimulationConfig(traders=400, days=150, seed=11, end=END))
    return engine


def _events(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(trader_events.c.trader_id, trader_events.c.event,
                                      trader_events.c.occurred_at)).all()
        positions = conn.execute(sa.select(trades.c.trader_id, trades.c.opened_at, trades.c.closed_at)).all()
    events = pd.DataFrame(rows, columns=["trader_id", "event", "occurred_at"])
    # "Did the trader trade in period P" asks of trading activity: every day from a position's opening
    # day to its closing day (opened, held, closed). Trading rows come after the stream's own rows.
    days = [(t, day) for t, opened, closed in positions
            for day in pd.date_range(pd.Timestamp(opened).floor("D"), pd.Timestamp(closed).floor("D"), freq="D")]
    trading = pd.DataFrame(days, columns=["trader_id", "occurred_at"]).assign(event=TRADING)
    return pd.concat([events.assign(event=events["event"].where(events["event"] != "trade", "trade_opened")),
                      trading], ignore_index=True)


def _kept(engine, flt: TraderFilter) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(traders.c.trader_id).where(flt.restrict(traders.c.trader_id))).scalars())


def reference_retention(events: pd.DataFrame, kept: set[int], spec: RetentionSpec, date_from: date | None,
                        date_to: date) -> list[list[int | None]]:
    """The matrix, computed the slow and obvious way (None where the period has not happened yet)."""
    period, ws, n = spec.period, spec.week_start, spec.intervals
    trunc = lambda ts: truncate_date(ts.date(), period, ws)  # noqa: E731
    last = truncate_date(date_to, period, ws)
    first = truncate_date(date_from, period, ws) if date_from else step_period(last, period, -(n - 1), ws)
    cohorts = []
    p = first
    while p <= last:
        cohorts.append(p)
        p = step_period(p, period, 1, ws)
    end = step_period(last, period, 1, ws)  # date_to snapped up to the end of its period
    # The newest day with data, whoever's (trading days after the newest event are no data of their own).
    data_end = events.loc[events["event"] != TRADING, "occurred_at"].max().date()
    ev = events[events["trader_id"].isin(kept)]
    in_range = lambda frame: frame[(frame["occurred_at"].dt.date >= first) & (frame["occurred_at"].dt.date < end)]  # noqa: E731

    starts = ev[ev["event"] == spec.start_event]
    if spec.mode == "recurring":
        members = {(t, trunc(ts)) for t, ts in in_range(starts)[["trader_id", "occurred_at"]].itertuples(index=False)}
    else:
        firsts = starts.groupby("trader_id")["occurred_at"].min().reset_index()
        members = {(t, trunc(ts)) for t, ts in in_range(firsts).itertuples(index=False)}
    returns = ev[ev["event"] == spec.return_event]
    returned = {(t, trunc(ts)) for t, ts in in_range(returns)[["trader_id", "occurred_at"]].itertuples(index=False)}

    matrix = []
    for c in cohorts:
        who = [t for t, p in members if p == c]
        row = [len(who)]
        for k in range(1, n):
            if step_period(c, period, k, ws) > data_end:
                row.append(None)  # a period that has not happened yet
                continue
            targets = [step_period(c, period, j, ws) for j in (range(k, n) if spec.cumulative else [k])]
            targets = [t for t in targets if t <= last]  # periods after the range count as 0
            row.append(sum(any((t, p) in returned for p in targets) for t in who))
        matrix.append(row)
    return matrix


CASES = [
    (RetentionSpec("ftd", "trade", "week", 6), None),
    (RetentionSpec("registered", "login", "day", 10, mode="first_time", cumulative=True), None),
    (RetentionSpec("trade", "deposit", "month", 4, cumulative=True), END - timedelta(days=120)),
    (RetentionSpec("login", "trade", "week", 5, mode="first_time", week_start="sunday"), END - timedelta(days=60)),
    (RetentionSpec("deposit_page_view", "trade", "week", 8), END - timedelta(days=100)),
    (RetentionSpec("kyc_submitted", "ftd", "day", 8), END - timedelta(days=30)),
]


def test_retention_matches_a_pandas_reading_of_the_spec(broker):
    events = _events(broker)
    assert len(events) > 10_000  # a real workload, not a toy
    with broker.connect() as conn:
        top = conn.execute(sa.select(traders.c.country).group_by(traders.c.country)
                           .order_by(sa.func.count().desc(), traders.c.country).limit(2)).scalars().all()
    flt = TraderFilter(countries=tuple(top))
    for spec, date_from in CASES:
        date_to = END - timedelta(days=3)
        for trader_filter in (TraderFilter(), flt):
            got = compute_retention(broker, spec, date_from=date_from, date_to=date_to, trader_filter=trader_filter)
            expected = reference_retention(events, _kept(broker, trader_filter), spec, date_from, date_to)
            assert [r["values"] for r in got.records()] == expected, (spec, date_from, trader_filter)
            assert sum(r[0] for r in expected) > 0, spec  # each case has cohorts to compare
            assert any(v for r in expected for v in r[1:]), spec  # … and returns


def test_event_sources_agree_with_the_trader_events_view(broker):
    names = list_event_names(broker)
    assert {"registered", "ftd", "trade", "login"} <= set(names)
    with broker.connect() as conn:
        view = pd.DataFrame(conn.execute(sa.select(trader_events.c.event, trader_events.c.trader_id,
                                                   trader_events.c.occurred_at)).all(),
                            columns=["event", "trader_id", "occurred_at"])
        assert sorted(names) == sorted(view["event"].unique())
        for name in [*CORE_EVENTS, *names]:
            mine = pd.DataFrame(conn.execute(event_select(name)).all(), columns=["trader_id", "occurred_at"])
            theirs = view.loc[view["event"] == name, ["trader_id", "occurred_at"]]
            assert sorted(map(tuple, mine.to_numpy().tolist())) == sorted(map(tuple, theirs.to_numpy().tolist())), name
