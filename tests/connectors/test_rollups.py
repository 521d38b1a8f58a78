"""The rollups always agree with the raw rows they summarise: after a seed, after an import, and
when migration 0003 fills the trading rollups on a database that already holds trades."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from alembic import command

from connectors import database
from connectors.importers import import_file
from connectors.rollups import ensure_rollups, rollup_queries
from connectors.schema import daily_activity, daily_trading, sessions, trader_firsts, trades, trading_days, transactions
from connectors.simulator import SimulationConfig, seed_database


def _rows(conn, table: sa.Table) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(sa.select(*table.columns)))


def _direct(conn, table: sa.Table) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(rollup_queries()[table.name]))


def _trading_in_pandas(conn) -> pd.DataFrame:
    """daily_trading recomputed from the raw trades with pandas: the independent reading."""
    raw = pd.read_sql(sa.select(trades), conn)
    raw["day"] = raw["closed_at"].dt.floor("D")
    raw["carried"] = (raw["opened_at"].dt.floor("D") != raw["day"]).astype(int)
    raw["costed"] = ((raw["commission_usd"] != 0) | (raw["swap_usd"] != 0)).astype(int)
    raw["asset_class"] = raw["asset_class"].fillna("-")
    raw["client_pnl_usd"] = raw["profit_usd"] + raw["commission_usd"] + raw["swap_usd"]
    out = (raw.groupby(["trader_id", "day", "asset_class"])
           .agg(closed=("trade_id", "size"), carried=("carried", "sum"), costed=("costed", "sum"),
                lots=("lots", "sum"), notional_usd=("notional_usd", "sum"), profit_usd=("profit_usd", "sum"),
                commission_usd=("commission_usd", "sum"), swap_usd=("swap_usd", "sum"),
                client_pnl_usd=("client_pnl_usd", "sum"),
                first_opened_at=("opened_at", "min"), last_closed_at=("closed_at", "max"))
           .reset_index())
    return out.sort_values(["trader_id", "day", "asset_class"], ignore_index=True)


def _trading_days_in_pandas(conn) -> list[tuple]:
    """trading_days from the raw trades: openings and closes per day, and the days strictly between a
    position's opening and closing day (held), as rows with nothing opened or closed."""
    raw = pd.read_sql(sa.select(trades.c.trader_id, trades.c.opened_at, trades.c.closed_at), conn)
    held = [(trader_id, day) for trader_id, opened, closed in raw.itertuples(index=False)
            for day in pd.date_range(opened.floor("D"), closed.floor("D"), freq="D")[1:-1]]
    assert held  # the simulated positions include some held over a day
    moves = pd.concat([
        pd.DataFrame({"trader_id": raw["trader_id"], "day": raw["opened_at"].dt.floor("D"), "opened": 1, "closed": 0}),
        pd.DataFrame({"trader_id": raw["trader_id"], "day": raw["closed_at"].dt.floor("D"), "opened": 0, "closed": 1}),
        pd.DataFrame(held, columns=["trader_id", "day"]).assign(opened=0, closed=0),
    ])
    days = moves.groupby(["trader_id", "day"], as_index=False)[["opened", "closed"]].sum()
    return sorted((int(r.trader_id), r.day.to_pydatetime(), int(r.opened), int(r.closed)) for r in days.itertuples())


def _firsts_in_pandas(conn) -> list[tuple]:
    """trader_firsts from the raw tables: first opening, approved deposit and login per trader."""
    def first(select: sa.Select) -> pd.Series:
        frame = pd.read_sql(select, conn)
        return frame.groupby("trader_id")[frame.columns[1]].min()

    opened = first(sa.select(trades.c.trader_id, trades.c.opened_at))
    deposit = first(sa.select(transactions.c.trader_id, transactions.c.created_at)
                    .where(transactions.c.kind == "deposit", transactions.c.status == "approved"))
    login = first(sa.select(sessions.c.trader_id, sessions.c.started_at))
    firsts = pd.concat({"trade": opened, "deposit": deposit, "login": login}, axis=1)

    def at(value):
        return None if pd.isna(value) else value.to_pydatetime()

    return sorted((int(tid), at(r.trade), at(r.deposit), at(r.login)) for tid, r in firsts.iterrows())


def _trading_table(conn) -> pd.DataFrame:
    frame = pd.read_sql(sa.select(daily_trading), conn)
    frame["asset_class"] = frame["asset_class"].fillna("-")
    return frame.sort_values(["trader_id", "day", "asset_class"], ignore_index=True)


def test_seeding_builds_both_rollups(engine):
    seed_database(engine, SimulationConfig(traders=300, days=60, seed=4, end=date(2026, 11, 1)))
    with engine.connect() as conn:
        rolled = _rows(conn, daily_activity)
        assert rolled and rolled == _direct(conn, daily_activity)
        assert {"registered", "ftd", "trade", "login"} <= {r[1] for r in rolled}
        assert _rows(conn, daily_trading) == _direct(conn, daily_trading)
        assert _rows(conn, trading_days) == _direct(conn, trading_days) == _trading_days_in_pandas(conn)
        assert _rows(conn, trader_firsts) == _direct(conn, trader_firsts) == _firsts_in_pandas(conn)
        table, expected = _trading_table(conn), _trading_in_pandas(conn)
    assert len(table) > 100 and table["carried"].sum() > 0
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_dtype=False, check_exact=False,
                                  rtol=1e-9)
    # The grain is exact: the rollup's totals are the raw totals.
    assert table["closed"].sum() == expected["closed"].sum()


def test_imports_refresh_the_rollups_for_the_traders_they_touch(engine, tmp_path):
    traders = tmp_path / "traders.csv"
    traders.write_text("external_id,registered_at,country,email\nC1,2026-03-01T10:00:00Z,DE,a@b.example\n"
                       "C2,2026-03-02T11:00:00Z,GB,c@d.example\n")
    import_file(engine, traders)
    events = tmp_path / "portal_events.csv"
    events.write_text("trader_external_id,event,occurred_at\nC1,deposit_page_view,2026-03-03T09:00:00Z\n"
                      "C1,deposit_page_view,2026-03-03T18:00:00Z\nC2,webinar_joined,2026-03-04T12:00:00Z\n")
    import_file(engine, events)
    deals = tmp_path / "trades.csv"
    deals.write_text(
        "external_id,trader_external_id,symbol,side,lots,opened_at,closed_at,open_price,close_price,profit_usd,"
        "commission_usd,swap_usd,asset_class\n"
        "T1,C1,EURUSD,buy,1.0,2026-03-05T10:00:00Z,2026-03-05T11:00:00Z,1.1,1.101,100,-7,0,fx\n"
        "T2,C1,EURUSD,sell,0.5,2026-03-05T22:00:00Z,2026-03-06T01:00:00Z,1.1,1.102,-100,-3.5,-1.2,fx\n"
        "T3,C1,BTCUSD,buy,0.1,2026-03-06T09:00:00Z,2026-03-06T10:00:00Z,60000,60100,100,0,0,crypto\n")
    import_file(engine, deals)
    with engine.connect() as conn:
        rolled = _rows(conn, daily_activity)
        assert rolled == _direct(conn, daily_activity)
        assert _rows(conn, daily_trading) == _direct(conn, daily_trading)
        days = _rows(conn, trading_days)
        trading = _trading_table(conn)
    # T1 and T2 opened on the 5th (T1 closed too); T2 and T3 closed on the 6th (T3 opened too).
    assert [(d.day, opened, closed) for _, d, opened, closed in days] == [(5, 2, 1), (6, 1, 2)]
    by_event = {(r[0], r[1]): r[3] for r in rolled}
    assert by_event[(1, "registered")] == 1 and by_event[(1, "deposit_page_view")] == 2
    assert by_event[(2, "webinar_joined")] == 1
    march_6 = trading[trading["day"] == pd.Timestamp("2026-03-06")].set_index("asset_class")
    assert len(trading) == 3 and trading["closed"].sum() == 3
    # T2 was opened on the 5th and closed on the 6th: carried; T3 opened and closed on the 6th.
    assert march_6["carried"].to_dict() == {"fx": 1, "crypto": 0}
    assert march_6["profit_usd"].to_dict() == {"fx": -100, "crypto": 100}
    assert march_6["costed"].to_dict() == {"fx": 1, "crypto": 0}
    assert march_6.loc["fx", "first_opened_at"] == pd.Timestamp("2026-03-05 22:00")


def test_migration_0003_fills_the_trading_rollups_from_existing_trades(engine):
    seed_database(engine, SimulationConfig(traders=200, days=45, seed=9, end=date(2026, 11, 1)))
    config = database.alembic_config(engine)
    with engine.connect() as conn:
        before = [_rows(conn, daily_trading), _rows(conn, trading_days), _rows(conn, trader_firsts)]
    assert all(before)
    command.downgrade(config, "0002")
    command.upgrade(config, "head")
    # 0003 fills the rollups as version 1 defined them (trading_days without held days); every process
    # rebuilds rollups of another version before reading (database.upgrade_schema -> ensure_rollups).
    with engine.begin() as conn:
        assert "built by version" in ensure_rollups(conn)
    with engine.connect() as conn:
        assert [_rows(conn, daily_trading), _rows(conn, trading_days), _rows(conn, trader_firsts)] == before
