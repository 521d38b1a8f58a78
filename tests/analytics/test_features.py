"""The point-in-time feature snapshot (analytics/features.py): nothing on or after T changes it, every
feature recomputed with pandas from the raw rows, the hand-made edge cases (a position still open at
T, a trader who never traded), and the materialised table. DuckDB and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.features import (
    DEFAULT_CLUSTER_FEATURES,
    FEATURE_NAMES,
    FEATURES,
    BadAsOf,
    compute_features,
    feature_table,
    materialise_features,
    materialised_snapshot,
)
from connectors import database, schema
from connectors.simulator import SimulationConfig, seed_database

END = date(2026, 11, 1)
AS_OF = date(2026, 10, 1)
T = datetime(2026, 10, 1)  # the reporting zone is UTC in tests: the date's midnight


@pytest.fixture
def simulated(engine):
    seed_database(engine, SimulationConfig(traders=300, days=120, seed=5, end=END))
    return engine


def test_catalogue_has_the_issue_features():
    assert len(FEATURES) >= 25 and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert set(DEFAULT_CLUSTER_FEATURES) <= set(FEATURE_NAMES)
    groups = {f.group for f in FEATURES}
    assert {"trading", "transactions", "profitability", "holding", "asset_mix", "leverage", "sessions",
            "recency", "tenure", "trends", "kyc"} <= groups


def _add_rows_from(engine, at: datetime) -> None:
    """Rows of every kind timed at or after ``at``, for traders who exist and for a new one."""
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.select(schema.traders.c.trader_id)
                                          .where(schema.traders.c.registered_at < at)
                                          .order_by(schema.traders.c.trader_id).limit(5))]
        next_id = {t.name: conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.primary_key.columns[0]), 0))).scalar()
                   + 1_000_000 for t in schema.DATA_TABLES}
    rows = {
        schema.traders: [{"trader_id": next_id["traders"], "external_id": "NEW-AT-T", "registered_at": at,
                          "country": "DE"}],
        schema.accounts: [{"account_id": next_id["accounts"] + i, "external_id": f"NEWACC{i}", "trader_id": t,
                           "platform": "MT5", "login": f"9{i}", "currency": "USD", "leverage": 1000, "opened_at": at}
                          for i, t in enumerate(ids)],
        schema.trades: [{"trade_id": next_id["trades"] + i, "external_id": f"NEWTRADE{i}", "trader_id": t,
                         "symbol": "BTCUSD", "asset_class": "crypto", "side": "buy", "lots": 5, "notional_usd": 1e6,
                         "opened_at": at + timedelta(hours=i), "closed_at": at + timedelta(hours=i, seconds=5),
                         "open_price": 1.0, "close_price": 1.0, "profit_usd": 1000, "leverage_used": 100,
                         "channel": "expert"} for i, t in enumerate(ids)],
        schema.transactions: [{"txn_id": next_id["transactions"] + i, "external_id": f"NEWTX{i}", "trader_id": t,
                               "kind": kind, "status": status, "amount": 500, "currency": "USD", "amount_usd": 500,
                               "created_at": at + timedelta(days=1)}
                              for i, (t, (kind, status)) in enumerate(
                                  zip(ids, [("deposit", "approved"), ("withdrawal", "approved"), ("bonus", "approved"),
                                            ("deposit", "declined"), ("deposit", "approved")], strict=True))],
        schema.sessions: [{"session_id": next_id["sessions"] + i, "external_id": f"NEWS{i}", "trader_id": t,
                           "started_at": at, "duration_s": 9999, "surface": "mobile"} for i, t in enumerate(ids)],
        schema.portal_events: [{"portal_event_id": next_id["portal_events"] + i, "external_id": f"NEWP{i}",
                                "trader_id": t, "event": "page_view", "occurred_at": at}
                               for i, t in enumerate(ids)],
        schema.kyc_events: [{"kyc_event_id": next_id["kyc_events"] + i, "external_id": f"NEWK{i}", "trader_id": t,
                             "status": "rejected", "occurred_at": at} for i, t in enumerate(ids)],
    }
    with engine.begin() as conn:
        for table, values in rows.items():
            database.bulk_insert(conn, table, pd.DataFrame(values))


def test_rows_on_or_after_the_snapshot_change_nothing(simulated):
    before = compute_features(simulated, as_of=AS_OF)
    assert before.as_of == T and len(before.frame) > 100
    _add_rows_from(simulated, T)
    after = compute_features(simulated, as_of=AS_OF)
    pd.testing.assert_frame_equal(before.frame, after.frame)
    # The same rows one day later are seen: the test above can fail.
    later = compute_features(simulated, as_of=AS_OF + timedelta(days=2)).frame
    assert (later["trades_total"].reindex(before.frame.index) != before.frame["trades_total"]).any()


def _raw(engine, table: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)


def _expected(engine, at: datetime) -> pd.DataFrame:
    """The features recomputed with pandas from the raw rows, by their written definitions."""
    tr, tx, se, po, ky, ac = (_raw(engine, name) for name in
                              ("trades", "transactions", "sessions", "portal_events", "kyc_events", "accounts"))
    people = _raw(engine, "traders")
    people = people[people.registered_at < at].set_index("trader_id")
    tr = tr[tr.opened_at < at]
    closed = tr[tr.closed_at < at]
    tx = tx[tx.created_at < at]
    se = se[se.started_at < at]
    since = {n: at - timedelta(days=n) for n in (7, 30, 60, 90)}
    out = pd.DataFrame(index=people.index)
    g = tr.groupby("trader_id")
    out["trades_total"] = g.size()
    for n in (7, 30, 90):
        recent = tr[tr.opened_at >= since[n]].groupby("trader_id")
        out[f"trades_{n}d"] = recent.size()
        out[f"lots_{n}d"] = recent.lots.sum()
        out[f"notional_{n}d"] = recent.notional_usd.sum()
    prev = tr[(tr.opened_at >= since[60]) & (tr.opened_at < since[30])].groupby("trader_id").size()
    last_trade = pd.concat([g.opened_at.max(), closed.groupby("trader_id").closed_at.max()], axis=1).max(axis=1)
    dep = tx[(tx.kind == "deposit") & (tx.status == "approved")].groupby("trader_id")
    wd = tx[(tx.kind == "withdrawal") & (tx.status == "approved")].groupby("trader_id")
    bonus = tx[tx.kind.isin(["bonus", "bonus_cancel"]) & (tx.status == "approved")]
    bonus = bonus.amount_usd.abs().where(bonus.kind == "bonus", -bonus.amount_usd.abs()).groupby(bonus.trader_id).sum()
    sg = se.groupby("trader_id")
    first = pd.concat([g.opened_at.min(), dep.created_at.min(), sg.started_at.min()], axis=1).min(axis=1)
    last = pd.concat([last_trade, dep.created_at.max(), sg.started_at.max()], axis=1).max(axis=1)
    weeks = ((last - first) / pd.Timedelta(days=1)).clip(lower=7) / 7
    out = out.fillna(0)
    out["notional_per_week"] = (g.notional_usd.sum() / weeks).reindex(out.index).fillna(0)
    out["deposits_usd"] = dep.amount_usd.sum().reindex(out.index).fillna(0)
    out["avg_deposit_usd"] = dep.amount_usd.mean()
    out["withdrawals_count"] = wd.size().reindex(out.index).fillna(0)
    out["bonus_share"] = bonus.reindex(out.index).fillna(0) / out["deposits_usd"].where(out["deposits_usd"] != 0)
    out["declined_deposits"] = (tx[(tx.kind == "deposit") & (tx.status == "declined")].groupby("trader_id").size()
                                .reindex(out.index).fillna(0))
    declined_wd = tx[(tx.kind == "withdrawal") & (tx.status == "declined") & (tx.created_at >= since[30])]
    out["declined_withdrawals_30d"] = declined_wd.groupby("trader_id").size().reindex(out.index).fillna(0)
    cg = closed.groupby("trader_id")
    out["realised_pnl_usd"] = (cg.profit_usd.sum() + cg.commission_usd.sum() + cg.swap_usd.sum()
                               ).reindex(out.index).fillna(0)
    out["balance_usd"] = (out["deposits_usd"] - wd.amount_usd.sum().reindex(out.index).fillna(0)
                          + bonus.reindex(out.index).fillna(0) + out["realised_pnl_usd"])
    out["win_rate"] = cg.profit_usd.apply(lambda p: (p > 0).mean())
    hold = (closed.closed_at - closed.opened_at) / pd.Timedelta(seconds=1)
    out["median_hold_s"] = hold.groupby(closed.trader_id).median()
    out["share_hold_under_60s"] = (hold < 60).groupby(closed.trader_id).mean()
    out["share_crypto"] = (tr.asset_class == "crypto").groupby(tr.trader_id).mean()
    out["avg_leverage_used"] = g.leverage_used.mean()
    out["account_leverage"] = ac[ac.opened_at < at].groupby("trader_id").leverage.max()
    out["symbols_traded"] = g.symbol.nunique().reindex(out.index).fillna(0)
    out["share_expert_trades"] = (tr.channel == "expert").groupby(tr.trader_id).mean()
    out["sessions_per_week"] = (sg.size() / weeks).reindex(out.index).fillna(0)
    out["avg_session_min"] = sg.duration_s.mean() / 60
    out["sessions_30d"] = se[se.started_at >= since[30]].groupby("trader_id").size().reindex(out.index).fillna(0)
    out["share_mobile_sessions"] = (se.surface == "mobile").groupby(se.trader_id).mean()
    out["portal_events_30d"] = (po[(po.occurred_at >= since[30]) & (po.occurred_at < at)].groupby("trader_id").size()
                                .reindex(out.index).fillna(0))
    out["days_since_last_trade"] = (at - last_trade) / pd.Timedelta(days=1)
    out["days_since_last_login"] = (at - sg.started_at.max()) / pd.Timedelta(days=1)
    out["tenure_days"] = (at - people.registered_at) / pd.Timedelta(days=1)
    out["trades_trend"] = np.log((out["trades_30d"] + 1) / (prev.reindex(out.index).fillna(0) + 1))
    ky = ky[ky.occurred_at < at].sort_values(["trader_id", "occurred_at", "kyc_event_id"])
    last_status = ky.groupby("trader_id").status.last().reindex(out.index)
    approved_at = people.kyc_approved_at
    out["kyc_state"] = last_status.where(last_status.notna(),
                                         np.where(approved_at.notna() & (approved_at < at), "approved", "none"))
    return out


def _test_accounts(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(schema.traders.c.is_test.is_(sa.true()),
                                                             schema.traders.c.registered_at < T)).scalar()


def test_every_feature_recomputed_with_pandas(simulated):
    got = compute_features(simulated, as_of=AS_OF).frame
    want = _expected(simulated, T)
    got = got.loc[want.index.intersection(got.index)]
    # One row per trader registered before T; test accounts are left out by default.
    assert len(got) == len(want) - _test_accounts(simulated)
    for column in want.columns:
        if column == "kyc_state":
            assert (got[column] == want.loc[got.index, column]).all(), column
            continue
        pd.testing.assert_series_equal(got[column], want.loc[got.index, column].astype(float), check_names=False,
                                       rtol=1e-6, obj=column)
    assert got["trades_total"].gt(0).sum() > 30  # the sample has traders of every kind


def test_hand_made_edges(engine):
    """A position open at T counts as opened, not as closed; a trader who never traded has rates of 0
    and no trade recency; a rate over a one-day span uses the 7-day minimum."""
    day = datetime(2026, 5, 1)
    trades = [
        # Trader 1: two positions on 20 April (one 30 s scalp), one opened before T and closed after it.
        (1, day - timedelta(days=11), day - timedelta(days=11) + timedelta(seconds=30), 50.0),
        (1, day - timedelta(days=11, hours=-1), day - timedelta(days=10), -20.0),
        (1, day - timedelta(hours=1), day + timedelta(hours=1), 999.0),
    ]
    with engine.begin() as conn:
        database.bulk_insert(conn, schema.traders, pd.DataFrame([
            {"trader_id": i, "external_id": f"T{i}", "registered_at": day - timedelta(days=20), "country": "DE"}
            for i in (1, 2)]))
        database.bulk_insert(conn, schema.trades, pd.DataFrame([
            {"trade_id": i, "external_id": f"D{i}", "trader_id": t, "symbol": "EURUSD", "asset_class": "fx",
             "side": "buy", "lots": 1, "notional_usd": 100_000, "opened_at": o, "closed_at": c, "open_price": 1.1,
             "close_price": 1.1, "profit_usd": p} for i, (t, o, c, p) in enumerate(trades, start=1)]))
        database.bulk_insert(conn, schema.transactions, pd.DataFrame([
            {"txn_id": 1, "external_id": "X1", "trader_id": 1, "kind": "deposit", "status": "approved", "amount": 300,
             "currency": "USD", "amount_usd": 300, "created_at": day - timedelta(days=12)},
            {"txn_id": 2, "external_id": "X2", "trader_id": 1, "kind": "deposit", "status": "pending", "amount": 700,
             "currency": "USD", "amount_usd": 700, "created_at": day - timedelta(days=2)}]))
    f = compute_features(engine, as_of=day.date()).frame
    one, two = f.loc[1], f.loc[2]
    assert one["trades_total"] == 3 and one["trades_7d"] == 1 and one["trades_30d"] == 3
    assert one["win_rate"] == 0.5 and one["realised_pnl_usd"] == 30.0  # the open position has no outcome yet
    assert one["share_hold_under_60s"] == 0.5 and one["median_hold_s"] == pytest.approx((30 + 23 * 3600) / 2)
    assert one["deposits_count"] == 1 and one["deposits_usd"] == 300  # pending is not a deposit
    # Active span: first deposit 19 April to last opening 30 April 23:00 = 11.96 days.
    span_weeks = (timedelta(days=12) - timedelta(hours=1)) / timedelta(days=7)
    assert one["trades_per_week"] == pytest.approx(3 / span_weeks)
    assert one["days_since_last_trade"] == pytest.approx(1 / 24)
    assert two["trades_total"] == 0 and two["trades_per_week"] == 0 and np.isnan(two["days_since_last_trade"])
    assert two["kyc_state"] == "none" and two["kyc_approved"] == 0 and np.isnan(two["win_rate"])


def test_empty_database_says_so(engine):
    with pytest.raises(BadAsOf, match="no events"):
        compute_features(engine)


def test_one_trader_and_the_materialised_table(simulated):
    full = compute_features(simulated, as_of=AS_OF)
    some = full.frame.index[:3].tolist()
    one = compute_features(simulated, as_of=AS_OF, trader_ids=some)
    pd.testing.assert_frame_equal(one.frame, full.frame.loc[some])
    assert materialised_snapshot(simulated) is None
    first = materialise_features(simulated, as_of=AS_OF)
    again = materialise_features(simulated, as_of=AS_OF + timedelta(days=10))  # replaces, never appends
    state = materialised_snapshot(simulated)
    assert state is not None and state.as_of == datetime(2026, 10, 11) and state.traders == again.traders
    assert first.traders >= len(full.frame)  # the table keeps test accounts too; rules filter them
    f = feature_table()
    with simulated.connect() as conn:
        stored = pd.read_sql(sa.select(f).order_by(f.c.trader_id), conn).set_index("trader_id")
    latest = compute_features(simulated, as_of=AS_OF + timedelta(days=10)).frame
    pd.testing.assert_series_equal(stored.loc[latest.index, "notional_per_week"], latest["notional_per_week"],
                                   check_names=False)


def test_a_table_of_older_features_is_rebuilt(simulated):
    """A trader_features table written by a version with other columns (48 features, before the
    models' three) reads as no snapshot, and materialising replaces it instead of failing."""
    with simulated.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS trader_features"))
        conn.execute(sa.text("CREATE TABLE trader_features (trader_id BIGINT PRIMARY KEY, as_of TIMESTAMP, "
                             "computed_at TIMESTAMP, trades_per_week DOUBLE PRECISION)"))
        conn.execute(sa.text("INSERT INTO trader_features VALUES (1, '2026-10-01', '2026-10-01', 2.0)"))
    assert materialised_snapshot(simulated) is None
    written = materialise_features(simulated, as_of=AS_OF)
    state = materialised_snapshot(simulated)
    assert state is not None and state.traders == written.traders > 1
    with simulated.connect() as conn:
        assert "balance_usd" in conn.execute(sa.select(feature_table()).limit(1)).keys()  # noqa: SIM118 (a Result, not a dict)
