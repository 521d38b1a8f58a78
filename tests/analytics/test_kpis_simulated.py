"""KPIs on a small simulated broker agree with straightforward pandas over the raw tables."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.kpis import compute_breakdown, compute_kpi_trend, compute_kpis, compute_volume_by_asset_class
from analytics.periods import DateRange
from connectors.simulator import SimulationConfig, seed_database

END = date(2026, 11, 1)  # exclusive: the last simulated day is 31 Oct
RANGE = DateRange(date(2026, 8, 3), date(2026, 10, 31))


def read(engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(sql)).mappings().all())


def in_range(column: pd.Series, rng: DateRange) -> pd.Series:
    return (column >= pd.Timestamp(rng.start_ts)) & (column < pd.Timestamp(rng.end_ts))


def test_kpis_agree_with_pandas_on_a_simulated_broker(engine):
    seed_database(engine, SimulationConfig(traders=600, days=200, seed=11, end=END))
    real = read(engine, "SELECT trader_id, registered_at FROM traders WHERE NOT is_test")
    keep = set(real["trader_id"])
    txn = read(engine, "SELECT trader_id, kind, status, CAST(amount_usd AS DOUBLE PRECISION) AS usd, created_at "
                       "FROM transactions")
    txn = txn[txn["trader_id"].isin(keep)]
    trd = read(engine, "SELECT trader_id, asset_class, opened_at, closed_at, CAST(notional_usd AS DOUBLE PRECISION) "
                       "AS notional, CAST(profit_usd + commission_usd + swap_usd AS DOUBLE PRECISION) AS pnl "
                       "FROM trades")
    trd = trd[trd["trader_id"].isin(keep)]

    kpis = {k.key: k for k in compute_kpis(engine, date_range=RANGE)}

    approved = txn[(txn["status"] == "approved") & in_range(txn["created_at"], RANGE)]
    deposits = approved.loc[approved["kind"] == "deposit", "usd"].sum()
    withdrawals = approved.loc[approved["kind"] == "withdrawal", "usd"].sum()
    first = txn[(txn["kind"] == "deposit") & (txn["status"] == "approved")].groupby("trader_id")["created_at"].min()
    closed = trd[in_range(trd["closed_at"], RANGE)]
    # Trading days: every day from a position's opening day to its closing day (opened, held, closed).
    days = pd.DataFrame([(t, d) for t, opened, closed in trd[["trader_id", "opened_at", "closed_at"]].itertuples(
        index=False) for d in pd.date_range(opened.normalize(), closed.normalize(), freq="D")],
        columns=["trader_id", "d"])
    days = days[in_range(days["d"], RANGE)].drop_duplicates()
    esma_from = pd.Timestamp(RANGE.end_ts - timedelta(days=365))
    year = trd[(trd["closed_at"] >= esma_from) & (trd["closed_at"] < pd.Timestamp(RANGE.end_ts))]
    per_trader = year.groupby("trader_id")["pnl"].sum()
    expected = {
        "registrations": in_range(real["registered_at"], RANGE).sum(),
        "ftds": in_range(first, RANGE).sum(),
        "deposits": deposits,
        "withdrawals": withdrawals,
        "net_deposits": deposits - withdrawals,
        "depositors": approved.loc[approved["kind"] == "deposit", "trader_id"].nunique(),
        "trades": len(closed),
        "volume_usd": closed["notional"].sum(),
        "client_pnl": closed["pnl"].sum(),
        "active_traders": days["trader_id"].nunique(),
        "dau": len(days) / RANGE.days,
        "esma_loss_share": (per_trader.round(2) < 0).mean(),
    }
    assert expected["registrations"] > 50 and expected["trades"] > 1000  # the comparison means something
    for key, value in expected.items():
        assert kpis[key].value == pytest.approx(float(value), rel=1e-9, abs=1e-6), key

    # The other views of the same period add up to the tiles.
    weekly = compute_kpi_trend(engine, metric="deposits", date_range=RANGE, period="week")
    assert weekly["value"].sum() == pytest.approx(kpis["deposits"].value)
    active = compute_kpi_trend(engine, metric="active_traders", date_range=RANGE, period="day")
    assert active["value"].mean() == pytest.approx(kpis["dau"].value)
    countries = compute_breakdown(engine, dimension="country", date_range=RANGE, top=5)
    assert countries["registrations"].sum() == kpis["registrations"].value
    assert countries["deposits"].sum() == pytest.approx(kpis["deposits"].value)
    assert countries["active_traders"].sum() == kpis["active_traders"].value
    assets = compute_volume_by_asset_class(engine, date_range=RANGE)
    assert assets["notional_usd"].sum() == pytest.approx(kpis["volume_usd"].value)
    assert assets["trades"].sum() == kpis["trades"].value
