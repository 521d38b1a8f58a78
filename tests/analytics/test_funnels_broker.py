"""Funnels on a small simulated broker, on DuckDB and PostgreSQL: the event sources equal the
trader_events view, the SQL pre-reductions and the strict-funnel collapse change no number, and the
registration funnel agrees with a plain pandas reading of the rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.events import event_select, list_event_names
from analytics.filters import TraderFilter
from analytics.funnels import (
    Exclusion,
    FunnelSpec,
    compute_dropoffs,
    compute_funnel,
    compute_funnel_trends,
    compute_time_to_convert,
    sources,
    stream,
)
from analytics.periods import DateRange
from connectors import database
from connectors.schema import CORE_EVENTS, trader_events
from connectors.simulator import SimulationConfig, seed_database

END = date(2026, 3, 1)
DAYS = 150
# (date range, trader filter) pairs each comparison runs under.
VIEWS = [
    (None, TraderFilter()),
    (DateRange(END - timedelta(days=60), END - timedelta(days=1)), TraderFilter(channels=("affiliate", "organic"))),
]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def broker(request, tmp_path_factory) -> Iterator[sa.Engine]:
    """A simulated broker (400 traders, 150 days) on each backend, seeded once for the module."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('funnel_broker') / 'broker.duckdb'}"
    else:
        url = request.getfixturevalue("pg_server_url")
    engine = database.get_engine(url)
    seed_database(engine, SimulationConfig(traders=400, days=DAYS, seed=11, end=END), replace=True)
    yield engine
    if request.param == "duckdb":
        engine.dispose()
        database.dispose_engines()


def test_event_sources_are_the_trader_events_view(broker):
    with broker.connect() as conn:
        for name in CORE_EVENTS:
            mine = sorted(conn.execute(event_select(name)).all())
            view = sorted(conn.execute(sa.select(trader_events.c.trader_id, trader_events.c.occurred_at).where(
                trader_events.c.event == name, trader_events.c.source != "portal_events")).all())
            assert mine == view, name
        in_view = set(conn.execute(sa.select(trader_events.c.event).distinct()).scalars())

    names = list_event_names(broker)
    assert set(names) == in_view
    assert names[:3] == ["lead_captured", "registered", "kyc_submitted"]


REDUCED_SPECS = [
    FunnelSpec(("registered", "kyc_approved", "ftd", "trade"), window_s=30 * 86_400),
    FunnelSpec(("ftd", "trade", "login"), window_s=3 * 86_400),
    FunnelSpec(("trade", "withdrawal"), window_s=7 * 86_400),
    FunnelSpec(("login", "deposit_page_view", "deposit"), window_s=3600),
    FunnelSpec(("kyc_approved", "login"), window_s=86_400),
    FunnelSpec(("deposit", "trade"), window_s=3600, breakdown="country"),
]


def _everything(engine: sa.Engine, spec: FunnelSpec, date_range, trader_filter) -> list[pd.DataFrame]:
    n = len(spec.steps)
    kwargs = {"date_range": date_range, "trader_filter": trader_filter}
    frames = [compute_funnel(engine, spec, **kwargs).steps,
              compute_time_to_convert(engine, spec, **kwargs),
              *[compute_dropoffs(engine, spec, step=k, **kwargs).people for k in range(1, n)]]
    if spec.order != "unordered":
        frames.append(compute_funnel_trends(engine, spec, period="week", **kwargs))
    return frames


def _assert_same(left: list[pd.DataFrame], right: list[pd.DataFrame]) -> None:
    for a, b in zip(left, right, strict=True):
        pd.testing.assert_frame_equal(a, b)
        assert a.attrs == b.attrs


@pytest.mark.parametrize("spec", REDUCED_SPECS, ids=lambda s: "-".join(s.steps))
def test_sql_pre_reduction_of_trades_and_logins_changes_no_result(broker, spec, monkeypatch):
    assert sources.EventPlan.of(spec).reducible_steps(trends=False)
    for date_range, trader_filter in VIEWS:
        reduced = _everything(broker, spec, date_range, trader_filter)
        with monkeypatch.context() as m:
            m.setattr(sources.EventPlan, "reducible_steps", lambda self, trends: {})
            whole = _everything(broker, spec, date_range, trader_filter)
        _assert_same(reduced, whole)
    assert reduced[0]["count"].iloc[0] > 0


UNORDERED_SPECS = [
    FunnelSpec(("registered", "kyc_approved", "ftd", "trade"), window_s=30 * 86_400, order="unordered"),
    FunnelSpec(("ftd", "trade"), window_s=86_400, order="unordered"),
    FunnelSpec(("deposit", "withdrawal", "login"), window_s=7 * 86_400, order="unordered"),
    FunnelSpec(("kyc_approved", "trade", "deposit"), window_s=3 * 86_400, order="unordered",
               exclusions=(Exclusion("deposit_declined", 0, 2),)),
    FunnelSpec(("trade", "deposit_page_view"), window_s=3600, order="unordered"),
]


@pytest.mark.parametrize("spec", UNORDERED_SPECS, ids=lambda s: "-".join(s.steps))
def test_unordered_funnels_lose_nothing_when_far_bulk_rows_are_left_out(broker, spec, monkeypatch):
    assert sources.EventPlan.of(spec).unordered_reducible(trends=False, prop_key=None) == (
        "trade" if "trade" in spec.steps else "login")
    for date_range, trader_filter in VIEWS:
        reduced = _everything(broker, spec, date_range, trader_filter)
        with monkeypatch.context() as m:
            m.setattr(sources.EventPlan, "unordered_reducible", lambda self, *args, **kwargs: None)
            whole = _everything(broker, spec, date_range, trader_filter)
        _assert_same(reduced, whole)
    assert reduced[0]["count"].iloc[0] > 0


STRICT_SPECS = [
    FunnelSpec(("deposit_page_view", "deposit"), window_s=3600, order="strict"),
    FunnelSpec(("registered", "kyc_submitted", "kyc_approved"), order="strict", window_s=7 * 86_400),
    FunnelSpec(("login", "trade"), window_s=3600, order="strict",
               exclusions=(Exclusion("deposit_declined", 0, 1),)),
    FunnelSpec(("deposit_page_view", "deposit"), window_s=3600, order="strict", breakdown="step",
               breakdown_kind="event", attribution="last_touch"),
]


@pytest.mark.parametrize("spec", STRICT_SPECS, ids=lambda s: "-".join(s.steps))
def test_strict_funnels_lose_nothing_when_unrelated_events_are_cut_and_collapsed(broker, spec, monkeypatch):
    for date_range, trader_filter in VIEWS:
        collapsed = _everything(broker, spec, date_range, trader_filter)
        with monkeypatch.context() as m:
            m.setattr(stream.EventStream, "collapse_unrelated", lambda self: None)
            m.setattr(sources, "_TRIM_UNRELATED", False)
            whole = _everything(broker, spec, date_range, trader_filter)
        _assert_same(collapsed, whole)


def test_registration_funnel_matches_a_pandas_reading_of_the_rules(broker):
    # Each simulated trader registers once, is approved at most once and has one FTD, so the rules
    # reduce to: approved at or after registration and FTD at or after approval, both within the
    # window of the registration and inside the date range.
    window = timedelta(days=10)
    date_range = DateRange(END - timedelta(days=90), END - timedelta(days=1))
    with broker.connect() as conn:
        events = pd.DataFrame(conn.execute(
            sa.select(trader_events.c.trader_id, trader_events.c.event, trader_events.c.occurred_at)
            .where(trader_events.c.event.in_(("registered", "kyc_approved", "ftd")),
                   date_range.contains(trader_events.c.occurred_at))).all(),
            columns=["trader_id", "event", "occurred_at"])
    wide = events.pivot_table(index="trader_id", columns="event", values="occurred_at", aggfunc="min")
    reg = wide["registered"].dropna()
    kyc = wide["kyc_approved"].reindex(reg.index)
    ftd = wide["ftd"].reindex(reg.index)
    step2 = (kyc >= reg) & (kyc - reg <= window)
    step3 = step2 & (ftd >= kyc) & (ftd - reg <= window)
    expected = [len(reg), int(step2.sum()), int(step3.sum())]
    gaps = (kyc - reg)[step2].dt.total_seconds()

    steps = compute_funnel(broker, FunnelSpec(("registered", "kyc_approved", "ftd"),
                                              window_s=int(window.total_seconds())),
                           date_range=date_range, trader_filter=TraderFilter(include_test=True)).steps

    assert steps["count"].tolist() == expected
    assert expected[2] > 0
    assert steps["average_time_to_convert_s"].iloc[1] == pytest.approx(gaps[gaps > 0].mean())
    assert steps["median_time_to_convert_s"].iloc[1] == pytest.approx(gaps[gaps > 0].median())
