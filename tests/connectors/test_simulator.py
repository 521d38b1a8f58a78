"""The broker simulator: determinism, integrity, realistic rates, and a truth kept apart."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from connectors import schema
from connectors.database import table_counts
from connectors.errors import DatabaseNotEmpty
from connectors.simulator import (
    ACCOUNT_MANAGERS,
    PERSONA_NAMES,
    RETENTION_DESK,
    SENIOR_MANAGERS,
    SimulationConfig,
    seed_database,
    simulate,
    truth_traders,
)

ROOT = Path(__file__).resolve().parents[2]
END = date(2026, 12, 1)
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def broker():
    """A mid-sized broker: big enough for stable rates, small enough to build in ~1 s."""
    return simulate(SimulationConfig(traders=8_000, days=548, seed=11, end=END))


@pytest.fixture(scope="module")
def facts(broker):
    t = broker.tables
    deposits = t["transactions"].query("kind == 'deposit' and status == 'approved'")
    ftd = deposits.groupby("trader_id").created_at.min().rename("ftd_at")
    return {"ftd": ftd, "truth": broker.truth.set_index("trader_id")}


def test_same_seed_gives_identical_tables_and_another_seed_does_not():
    cfg = SimulationConfig(traders=600, days=120, seed=3, end=END)
    a, b = simulate(cfg), simulate(cfg)
    for name, frame in a.tables.items():
        pd.testing.assert_frame_equal(frame, b.tables[name], obj=name)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    c = simulate(SimulationConfig(traders=600, days=120, seed=4, end=END))
    assert not a.tables["trades"]["profit_usd"].equals(c.tables["trades"]["profit_usd"])


def test_every_time_lies_inside_the_simulated_period(broker):
    start, end = pd.Timestamp(END) - 548 * DAY, pd.Timestamp(END)
    for name, col in schema.TIME_COLUMNS.items():
        times = broker.tables[name][col].dropna()
        assert times.min() >= start - 3 * DAY, name  # leads may predate the first registration
        assert times.max() < end, name
    trades = broker.tables["trades"]
    assert (trades.closed_at >= trades.opened_at).all()
    assert trades.closed_at.max() < end


def test_funnel_steps_happen_in_order(broker, facts):
    t = broker.tables
    traders = t["traders"].set_index("trader_id")
    kyc_first = t["kyc_events"].groupby("trader_id").occurred_at.min()
    assert (kyc_first >= traders.registered_at.reindex(kyc_first.index)).all()
    approved = traders.dropna(subset=["kyc_approved_at"])
    ftd = facts["ftd"]
    assert (ftd >= approved.kyc_approved_at.reindex(ftd.index)).all(), "FTD before KYC approval"
    first_trade = t["trades"].groupby("trader_id").opened_at.min()
    assert (first_trade >= ftd.reindex(first_trade.index)).all(), "trade before the FTD"
    assert set(t["trades"].trader_id) <= set(ftd.index)
    # Leads without registration have no KYC, money or trades.
    leads = set(traders.index[traders.registered_at.isna()])
    assert leads and not leads & set(t["kyc_events"].trader_id) and not leads & set(ftd.index)


def test_funnel_rates_are_realistic(broker, facts):
    t = broker.tables
    traders = t["traders"]
    reg = traders.dropna(subset=["registered_at"]).set_index("trader_id")
    mature = reg[reg.registered_at < pd.Timestamp(END) - 30 * DAY]
    ftd = facts["ftd"].reindex(mature.index)
    within_30 = ((ftd - mature.registered_at) <= 30 * DAY).mean()
    assert 0.20 <= within_30 <= 0.35, within_30
    statuses = t["kyc_events"].status.value_counts()
    assert statuses["rejected"] > 0 and statuses["resubmission"] > 0
    txn = t["transactions"].groupby(["kind", "status"]).size()
    assert txn[("deposit", "declined")] > 0, "no declined deposit attempts"
    assert txn[("withdrawal", "declined")] > 0, "no failed withdrawals"
    assert txn[("bonus", "approved")] > 0 and txn[("bonus_cancel", "approved")] > 0
    redeposit = (t["transactions"].query("kind == 'deposit' and status == 'approved'")
                 .groupby("trader_id").size() > 1).mean()
    assert 0.15 <= redeposit <= 0.6, redeposit


def _active_in(trades: pd.DataFrame, ftd: pd.Series, lo_days: int, hi_days: int) -> pd.Index:
    t = trades.merge(ftd.rename("ftd_at"), left_on="trader_id", right_index=True)
    age = t.opened_at - t.ftd_at
    return pd.Index(t.loc[(age >= lo_days * DAY) & (age < hi_days * DAY), "trader_id"].unique())


def test_about_a_quarter_of_depositors_still_trade_six_months_after_ftd(broker, facts):
    ftd = facts["ftd"][facts["ftd"] < pd.Timestamp(END) - 200 * DAY]
    share = len(_active_in(broker.tables["trades"], ftd, 150, 180)) / len(ftd)
    assert 0.18 <= share <= 0.33, share


def test_ten_sessions_in_the_first_month_go_with_markedly_longer_lives(broker, facts):
    ftd = facts["ftd"][facts["ftd"] < pd.Timestamp(END) - 120 * DAY]
    s = broker.tables["sessions"].merge(ftd.rename("ftd_at"), left_on="trader_id", right_index=True)
    age = s.started_at - s.ftd_at
    first30 = s[(age >= pd.Timedelta(0)) & (age < 30 * DAY)].groupby("trader_id").size()
    first30 = first30.reindex(ftd.index, fill_value=0)
    retained = ftd.index.isin(_active_in(broker.tables["trades"], ftd, 90, 120))
    engaged = (first30 >= 10).to_numpy()
    ratio = retained[engaged].mean() / retained[~engaged].mean()
    assert ratio >= 1.5, ratio


def test_personas_behave_differently(broker):
    trades = broker.tables["trades"].merge(broker.truth[["trader_id", "persona"]], on="trader_id")
    assert set(broker.truth.persona) == set(PERSONA_NAMES) and len(PERSONA_NAMES) >= 5
    hold = (trades.closed_at - trades.opened_at).dt.total_seconds().groupby(trades.persona).median()
    assert hold["scalper"] < 600 < 86_400 < hold["swing_trader"] < hold["occasional_investor"]
    crypto = (trades.asset_class.astype(str) == "crypto").groupby(trades.persona).mean()
    assert crypto["crypto_gambler"] > 0.5 > crypto["scalper"]
    per_trader = trades.groupby(["persona", "trader_id"]).size().groupby("persona").median()
    assert per_trader["scalper"] > 10 * per_trader["occasional_investor"]
    leverage = trades.groupby("persona").leverage_used.median()
    assert leverage["crypto_gambler"] > 3 * leverage["occasional_investor"]
    stocks = (trades.asset_class.astype(str) == "stocks").groupby(trades.persona).mean()
    assert stocks["occasional_investor"] == stocks.max()
    channel = (trades.channel.astype(str) == "expert").groupby(trades.persona).mean()
    assert channel["algo_trader"] == 1.0 and channel.drop("algo_trader").max() == 0.0


def test_churn_follows_its_true_drivers(broker, facts):
    truth = facts["truth"]
    depositors = truth.dropna(subset=["engagement"])
    drivers = depositors.churn_driver.value_counts()
    for name in ("losses", "inactivity", "failed_withdrawal", "low_engagement"):
        assert drivers.get(name, 0) > 0, name
    # A declined withdrawal is followed by a much higher churn rate than the average.
    txn = broker.tables["transactions"]
    failed = set(txn.query("kind == 'withdrawal' and status == 'declined'").trader_id)
    churned = depositors.churned_at.notna()
    assert churned[depositors.index.isin(failed)].mean() > churned.mean()
    assert depositors.reactivated_at.notna().sum() > 0


def _equity_at_openings(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every trade with the ledger's equity when it opened and its account's leverage.

    Equity = approved deposits + bonuses - approved withdrawals - bonus cancellations (up to the
    opening, inclusive) + client P&L (profit + commission + swap) of the trades closed by then.
    """
    txn = tables["transactions"].query("status == 'approved'")
    sign = txn.kind.map({"deposit": 1, "bonus": 1, "withdrawal": -1, "bonus_cancel": -1}).fillna(0)
    trades = tables["trades"]
    moves = pd.concat([
        pd.DataFrame({"trader_id": txn.trader_id, "at": txn.created_at, "delta": sign * txn.amount_usd.abs()}),
        pd.DataFrame({"trader_id": trades.trader_id, "at": trades.closed_at,
                      "delta": trades.profit_usd + trades.commission_usd + trades.swap_usd}),
    ]).sort_values("at", kind="stable")
    moves["equity"] = moves.groupby("trader_id").delta.cumsum()
    moves = moves.groupby(["trader_id", "at"], as_index=False).equity.last().sort_values("at")
    opened = trades[["trade_id", "trader_id", "account_id", "opened_at", "notional_usd"]].sort_values("opened_at")
    opened = pd.merge_asof(opened, moves, left_on="opened_at", right_on="at", by="trader_id")
    leverage = tables["accounts"].set_index("account_id").leverage
    return opened.assign(equity=opened.equity.fillna(0.0), leverage=opened.account_id.map(leverage))


@pytest.mark.parametrize("seed", [11, 12])
def test_no_position_opens_beyond_equity_times_leverage(seed):
    tables = simulate(SimulationConfig(traders=4_000, days=548, seed=seed, end=END)).tables
    opened = _equity_at_openings(tables)

    assert len(opened) > 100_000 and opened.leverage.notna().all()
    over = opened[opened.notional_usd > opened.equity * opened.leverage]
    assert over.empty, over.head()


def test_a_depositor_is_never_most_of_the_volume_and_losses_stop_out(broker):
    trades = broker.tables["trades"]
    deposits = (broker.tables["transactions"].query("kind == 'deposit' and status == 'approved'")
                .groupby("trader_id").amount_usd.sum())
    volume = trades.groupby("trader_id").notional_usd.sum()
    assert volume.max() / volume.sum() < 0.05
    # Positions are sized on at most 3x the trader's deposits, at most 1:500.
    assert (volume / deposits.reindex(volume.index)).max() < 100_000
    stopped = trades[trades.close_reason == "stop_out"]
    assert 0 < len(stopped) < 0.02 * len(trades)
    assert (stopped.profit_usd < 0).all()


def test_owners_are_account_managers_for_the_funded_a_desk_for_the_others_and_none_for_leads(broker, facts):
    traders = broker.tables["traders"].set_index("trader_id")
    funded = traders.index.isin(facts["ftd"].index)
    leads = traders.registered_at.isna()
    assert traders.owner[leads].isna().all()
    assert (traders.owner[~leads & ~funded] == RETENTION_DESK).all()
    managed = traders.owner[funded]
    assert set(managed) == set(ACCOUNT_MANAGERS)
    loads = managed.value_counts()
    assert loads.min() > 0.02 * len(managed)  # each manager has a real book (seniors: the VIPs)
    vip = traders.vip_tier[funded].notna()
    assert vip.any() and managed[vip.to_numpy()].isin(SENIOR_MANAGERS).all()


def test_most_retail_accounts_lose_money(broker):
    trades = broker.tables["trades"]
    pnl = (trades.profit_usd + trades.commission_usd + trades.swap_usd).groupby(trades.trader_id).sum()
    assert 0.65 <= (pnl < 0).mean() <= 0.92  # ESMA disclosures: 74-89% of retail CFD accounts


def test_money_is_in_cents_and_consistent_across_currencies(broker):
    txn = broker.tables["transactions"]
    for col in ("amount", "amount_usd"):
        assert np.allclose(txn[col], txn[col].round(2))
    assert (txn.amount > 0).all()
    usd = txn[txn.currency == "USD"]
    assert (usd.amount == usd.amount_usd).all()
    eur = txn[txn.currency == "EUR"]
    assert np.allclose(eur.amount_usd, (eur.amount * 1.08).round(2))


def test_application_code_never_reads_the_truth_table():
    pattern = re.compile(r"simulator_truth|TRUTH_SCHEMA|truth_traders|\.truth\b")
    offenders = []
    for folder in ("analytics", "pages", "components"):
        for path in (ROOT / folder).rglob("*.py"):
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    if pattern.search((ROOT / "app.py").read_text()):
        offenders.append("app.py")
    assert offenders == []


def test_seeding_writes_every_table_and_keeps_the_truth_in_its_own_schema(engine):
    summary = seed_database(engine, SimulationConfig(traders=500, days=90, seed=5, end=END))
    with engine.connect() as conn:
        counts = table_counts(conn)
        assert counts == summary.rows and all(n > 0 for n in counts.values())
        truth_rows = conn.execute(sa.select(sa.func.count()).select_from(truth_traders)).scalar_one()
        assert truth_rows == 500
        events = conn.execute(sa.select(schema.trader_events.c.event, sa.func.count())
                              .group_by(schema.trader_events.c.event)).all()
        names = dict(events)
        for expected in ("registered", "kyc_submitted", "kyc_approved", "ftd", "deposit", "trade",
                         "login", "deposit_page_view", "platform_download"):
            assert names.get(expected, 0) > 0, expected
        ftd_count = conn.execute(sa.text(
            "SELECT COUNT(DISTINCT trader_id) FROM transactions WHERE kind='deposit' AND status='approved'"
        )).scalar_one()
        assert names["ftd"] == ftd_count
        public = sa.inspect(conn).get_table_names()
        assert "traders" in public and not any("truth" in t for t in public)


def test_seeding_refuses_a_database_that_holds_data_unless_replacing(engine):
    cfg = SimulationConfig(traders=200, days=60, seed=1, end=END)
    seed_database(engine, cfg)
    with pytest.raises(DatabaseNotEmpty, match="--replace"):
        seed_database(engine, cfg)
    summary = seed_database(engine, cfg, replace=True)
    with engine.connect() as conn:
        assert table_counts(conn) == summary.rows


SUMS = {
    "traders": ["trader_id"],
    "accounts": ["account_id", "leverage"],
    "kyc_events": ["kyc_event_id"],
    "transactions": ["amount", "amount_usd"],
    "trades": ["lots", "notional_usd", "profit_usd", "commission_usd", "swap_usd"],
    "sessions": ["duration_s"],
    "portal_events": ["portal_event_id"],
}


def _fingerprint(engine: sa.Engine) -> dict:
    out = {}
    with engine.connect() as conn:
        for table in schema.DATA_TABLES:
            cols = [sa.func.count()] + [sa.cast(sa.func.sum(table.c[c]), sa.Numeric(24, 2)) for c in SUMS[table.name]]
            time_col = table.c[schema.TIME_COLUMNS[table.name]]
            cols += [sa.func.min(time_col), sa.func.max(time_col), sa.func.count(sa.distinct(table.c.external_id))]
            out[table.name] = tuple(conn.execute(sa.select(*cols)).one())
    return out


def test_same_seed_gives_the_same_database_on_duckdb_and_postgres(tmp_path, request):
    from connectors.database import get_engine, upgrade_schema

    pg_url = request.getfixturevalue("pg_server_url")
    cfg = SimulationConfig(traders=1_500, days=200, seed=21, end=END)
    prints = []
    for url in (f"duckdb:///{tmp_path / 'a.duckdb'}", pg_url):
        eng = get_engine(url)
        upgrade_schema(eng)
        seed_database(eng, cfg, replace=True)
        prints.append(_fingerprint(eng))
    assert prints[0] == prints[1]
