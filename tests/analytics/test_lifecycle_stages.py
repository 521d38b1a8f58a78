"""Lifecycle stages (lead → … → churned → reactivated) and the flows between two days, on
DuckDB and PostgreSQL. Every trader below is one rule of the precedence in
analytics.lifecycle.compute_stage_distribution; the stages are read as of 2026-03-31 (D), whose
30-day active window starts on 03-02.

What keeps a trader alive is trading and the churn activity setting (TRADERLENS_CHURN_ACTIVITY): the
hand-made broker's rules are read with "any" (logins count, as traders 9, 10 and 24 need), and
test_by_default_logins_keep_no_trader_alive reads it with the default, trading or funding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import count

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.events import CHURN_ACTIVITY_ENV, compute_data_span
from analytics.filters import EVERYONE, TraderFilter
from analytics.lifecycle import (
    FLOW_COLUMNS,
    NOT_CAPTURED,
    STAGE_COLUMNS,
    STAGES,
    compute_stage_distribution,
    compute_stage_flows,
)
from connectors import database, schema
from connectors.rollups import refresh_rollups

D = date(2026, 3, 31)
_ids = count(1)


def t(text: str, hour: int = 12) -> datetime:
    return datetime.combine(date.fromisoformat(f"2026-{text}"), datetime.min.time()) + timedelta(hours=hour)


@dataclass
class Broker:
    traders: list[dict] = field(default_factory=list)
    trades: list[dict] = field(default_factory=list)
    txns: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)

    def trader(self, tid: int, *, registered: str | None = "01-01", lead: str | None = None,
               kyc: str | None = None, vip: str | None = None, is_test: bool = False) -> Broker:
        self.traders.append({"trader_id": tid, "external_id": f"T{tid}", "country": "DE", "is_test": is_test,
                             "registered_at": t(registered, 9) if registered else None,
                             "lead_at": t(lead, 8) if lead else None,
                             "kyc_approved_at": t(kyc, 10) if kyc else None, "vip_tier": vip})
        return self

    def trade(self, tid: int, *days: str, closed: str | None = None) -> Broker:
        for day in days:
            n = next(_ids)
            self.trades.append({"trade_id": n, "external_id": f"D{n}", "trader_id": tid, "symbol": "EURUSD",
                                "side": "buy", "lots": 1, "opened_at": t(day),
                                "closed_at": t(closed) if closed else t(day, 13),
                                "open_price": 1.1, "close_price": 1.1, "profit_usd": 0})
        return self

    def deposit(self, tid: int, day: str, status: str = "approved") -> Broker:
        n = next(_ids)
        self.txns.append({"txn_id": n, "external_id": f"X{n}", "trader_id": tid, "kind": "deposit", "status": status,
                          "amount": 100, "currency": "USD", "amount_usd": 100, "created_at": t(day)})
        return self

    def login(self, tid: int, *days: str) -> Broker:
        for day in days:
            n = next(_ids)
            self.sessions.append({"session_id": n, "external_id": f"S{n}", "trader_id": tid, "started_at": t(day),
                                  "duration_s": 60, "surface": "web"})
        return self

    def write(self, engine) -> None:
        with engine.begin() as conn:
            for table, rows in ((schema.traders, self.traders), (schema.trades, self.trades),
                                (schema.transactions, self.txns), (schema.sessions, self.sessions)):
                if rows:
                    database.bulk_insert(conn, table, pd.DataFrame(rows))
            refresh_rollups(conn)  # what seeding and imports do after writing


def broker() -> Broker:
    b = Broker()
    b.trader(1, registered=None, lead="02-20")                 # lead
    b.trader(2, registered="02-20")                            # registered
    b.trader(3, kyc="03-05")                                   # kyc_approved
    b.trader(4, kyc="02-25").deposit(4, "03-10").deposit(4, "03-29", status="declined")  # ftd: never churns
    b.trader(5).trade(5, "03-30")                              # active
    b.trader(6).trade(6, "03-20")                              # dormant: 11 days without activity
    b.trader(7).trade(7, "02-15")                              # churned: 44 days
    b.trader(8).trade(8, "01-10", "03-25")                     # reactivated: back after 74 days
    b.trader(9).trade(9, "03-10").login(9, *[f"03-{n}" for n in range(12, 31)])  # active: logs in daily
    b.trader(10).trade(10, "02-20").login(10, "03-30")         # dormant: no trade in 30 days
    b.trader(11).trade(11, "02-01", closed="04-15")            # active: position still open
    b.trader(12, registered="04-05")                           # not captured yet: left out
    b.trader(13, vip="gold").trade(13, "03-31")                # active, VIP
    b.trader(14, is_test=True).trade(14, "03-31")              # test account: left out by default
    b.trader(15).deposit(15, "01-10").trade(15, "03-25")       # active: no trade before the gap
    b.trader(16).trade(16, "03-24")                            # dormant: exactly 7 days
    b.trader(17).trade(17, "03-25")                            # active: 6 days
    b.trader(18).trade(18, "03-01")                            # churned: exactly 30 days
    b.trader(19).trade(19, "03-02")                            # dormant: 29 days
    b.trader(20).trade(20, "02-27", "03-30")                   # reactivated: churned on 03-29 (30 days)
    b.trader(21).trade(21, "02-28", "03-30")                   # active: 29 days at most, never churned
    b.trader(22, registered="03-15")                           # registered during the flow span
    b.trader(23).trade(23, "01-05")                            # churned long ago
    b.trader(24).trade(24, "01-05").login(24, "03-30")         # dormant: logs in again, trades no more
    return b


@pytest.fixture(autouse=True)
def logins_count(monkeypatch):
    """Logins keep a trader alive, unless a test says otherwise."""
    monkeypatch.setenv(CHURN_ACTIVITY_ENV, "any")


def counts(frame: pd.DataFrame, column: str = "traders") -> dict[str, int]:
    return {s: n for s, n in zip(frame["stage"], frame[column], strict=True) if n}


def test_each_trader_gets_the_stage_of_the_first_matching_rule(engine):
    broker().write(engine)

    frame = compute_stage_distribution(engine, as_of=D)

    assert list(frame.columns) == STAGE_COLUMNS
    assert frame["stage"].tolist() == list(STAGES)  # funnel order, zero rows included
    assert counts(frame) == {"lead": 1, "registered": 2, "kyc_approved": 1, "ftd": 1, "active": 7,
                             "dormant": 5, "churned": 3, "reactivated": 2}
    assert counts(frame, "vip_traders") == {"active": 1}
    assert frame["share"].sum() == pytest.approx(1.0)
    assert frame.set_index("stage").loc["active", "share"] == pytest.approx(7 / 22)


def test_by_default_logins_keep_no_trader_alive(engine, monkeypatch):
    monkeypatch.delenv(CHURN_ACTIVITY_ENV)  # trading or an approved deposit
    broker().write(engine)

    frame = compute_stage_distribution(engine, as_of=D)

    # Trader 9 (last trade 03-10, logs in daily) is dormant; 10 (last trade 02-20) and 24 (01-05), who
    # logged in on 03-30, are churned. Trader 4's deposit still makes them an FTD, and 15's counts.
    assert counts(frame) == {"lead": 1, "registered": 2, "kyc_approved": 1, "ftd": 1, "active": 6,
                             "dormant": 4, "churned": 5, "reactivated": 2}
    flows = {(a, b): n for a, b, n in compute_stage_flows(engine, from_date=date(2026, 3, 1), to_date=D)
             .itertuples(index=False)}
    assert flows[("churned", "churned")] == 2 and ("churned", "dormant") not in flows  # 23, and 24


@pytest.mark.parametrize("dormant_days, churn_days, expected", [
    # Traders 6 (11 days) and 16 (7 days) are active again when dormancy takes 14 days.
    (14, 30, {"active": 9, "dormant": 3, "churned": 3, "reactivated": 2}),
    # With 60 days, 7 and 18 are only dormant, and 20's 30-day gap was no churn.
    (7, 60, {"active": 8, "dormant": 7, "churned": 1, "reactivated": 1}),
    # With 90 days, trader 8's 74-day gap was no churn either, and 23 (85 days) is only dormant.
    (7, 90, {"active": 9, "dormant": 8}),
])
def test_thresholds_move_traders_between_active_dormant_churned_and_reactivated(engine, dormant_days, churn_days,
                                                                                expected):
    broker().write(engine)

    frame = compute_stage_distribution(engine, as_of=D, dormant_days=dormant_days, churn_days=churn_days)

    trading = {k: v for k, v in counts(frame).items() if k in ("active", "dormant", "churned", "reactivated")}
    assert trading == expected


def test_the_filter_applies_and_the_default_day_is_the_newest_with_data(engine):
    broker().write(engine)

    everyone = counts(compute_stage_distribution(engine, as_of=D, trader_filter=EVERYONE))
    vip = counts(compute_stage_distribution(engine, as_of=D, trader_filter=TraderFilter(vip_tiers=("gold",))))

    assert everyone["active"] == 8  # the test account too
    assert vip == {"active": 1}
    newest = compute_data_span(engine).end
    assert newest == date(2026, 4, 5)
    assert compute_stage_distribution(engine).equals(compute_stage_distribution(engine, as_of=newest))


def test_an_empty_database_has_every_stage_at_zero(engine):
    frame = compute_stage_distribution(engine, as_of=D)

    assert frame["traders"].tolist() == [0] * len(STAGES) and frame["share"].tolist() == [0.0] * len(STAGES)


def test_flows_add_up_to_the_distributions_on_both_days(engine):
    broker().write(engine)
    start = date(2026, 3, 1)

    flows = compute_stage_flows(engine, from_date=start, to_date=D)

    assert list(flows.columns) == FLOW_COLUMNS
    moves = {(a, b): n for a, b, n in flows.itertuples(index=False)}
    assert moves[(NOT_CAPTURED, "registered")] == 1              # trader 22
    assert moves[("churned", "reactivated")] == 1                # trader 8
    assert moves[("dormant", "churned")] == 1                    # trader 7 (14 days on 03-01)
    assert moves[("churned", "dormant")] == 1                    # trader 24 logs in again
    assert moves[("churned", "churned")] == 1                    # trader 23
    assert moves[("kyc_approved", "ftd")] == 1                   # trader 4
    assert moves[("registered", "active")] >= 1                  # trader 5, first trade in March
    into = flows.groupby("to_stage")["traders"].sum().to_dict()
    assert into == counts(compute_stage_distribution(engine, as_of=D))
    out_of = flows[flows["from_stage"] != NOT_CAPTURED].groupby("from_stage")["traders"].sum().to_dict()
    assert out_of == counts(compute_stage_distribution(engine, as_of=start))
    # Stage order, not alphabetical: the Sankey reads left to right.
    order = [NOT_CAPTURED, *STAGES]
    keys = [(order.index(a), order.index(b)) for a, b in zip(flows["from_stage"], flows["to_stage"], strict=True)]
    assert keys == sorted(keys)


def test_flows_over_no_time_stay_on_the_diagonal(engine):
    broker().write(engine)

    flows = compute_stage_flows(engine, from_date=D, to_date=D)

    assert (flows["from_stage"] == flows["to_stage"]).all()
    assert flows["traders"].sum() == 22


def test_nonsense_thresholds_and_spans_are_refused(engine):
    with pytest.raises(ValueError, match="dormant_days"):
        compute_stage_distribution(engine, as_of=D, dormant_days=30, churn_days=30)
    with pytest.raises(ValueError, match="at least 30"):
        compute_stage_distribution(engine, as_of=D, dormant_days=3, churn_days=14)
    with pytest.raises(ValueError, match="before"):
        compute_stage_flows(engine, from_date=D, to_date=D - timedelta(days=1))


# -- A simulated broker against a plain reading of the rules ---------------------------------------


def stages_in_python(people: pd.DataFrame, acts: pd.DataFrame, day: date, dormant_days: int,
                     churn_days: int) -> dict[str, int]:
    """The precedence trader by trader, walking each trader's activity in time order. ``acts``:
    trader_id, kind, start, stop (a trade's stop is its close; instants have stop == start), alive (the
    activity keeps a trader from churning; every row captures one)."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time())
    window = end - timedelta(days=30)
    found: dict[str, int] = {}
    by_trader = {tid: rows.sort_values("start") for tid, rows in acts[acts["start"] < end].groupby("trader_id")}
    for p in people.itertuples():
        rows = by_trader.get(p.Index)
        seen = rows is not None and len(rows) > 0
        if not ((pd.notna(p.lead_at) and p.lead_at < end) or (pd.notna(p.registered_at) and p.registered_at < end)
                or seen):
            continue
        tr = rows[rows["kind"] == "trade"] if seen else None
        if seen and len(tr):
            rows = rows[rows["alive"]]
            last_any = rows["stop"].clip(upper=end).max()
            last_trade = tr["stop"].clip(upper=end).max()
            first_trade = tr["start"].min()
            comeback = False
            running_end = None
            for r in rows.itertuples():
                if running_end is not None and r.start >= window and first_trade <= running_end:
                    quiet = (r.start.date() - timedelta(days=1) - running_end.date()).days
                    comeback = comeback or quiet >= churn_days
                running_end = r.stop if running_end is None else max(running_end, r.stop)
            if last_any < end - timedelta(days=churn_days):
                stage = "churned"
            elif last_any < end - timedelta(days=dormant_days) or last_trade < window:
                stage = "dormant"
            else:
                stage = "reactivated" if comeback else "active"
        elif seen and (rows["kind"] == "deposit").any():
            stage = "ftd"
        elif pd.notna(p.kyc_approved_at) and p.kyc_approved_at < end:
            stage = "kyc_approved"
        elif pd.notna(p.registered_at) and p.registered_at < end:
            stage = "registered"
        else:
            stage = "lead"
        found[stage] = found.get(stage, 0) + 1
    return found


@pytest.mark.parametrize("setting", ["trading_funding", "any"])
def test_a_simulated_broker_matches_a_plain_reading_of_the_stage_rules(engine, setting, monkeypatch):
    from connectors.simulator import SimulationConfig, seed_database

    monkeypatch.setenv(CHURN_ACTIVITY_ENV, setting)

    seed_database(engine, SimulationConfig(traders=300, days=200, seed=13, end=date(2026, 11, 1)))
    t, tx, s = schema.traders, schema.transactions, schema.sessions
    with engine.connect() as conn:
        people = pd.read_sql(sa.select(t.c.trader_id, t.c.lead_at, t.c.registered_at, t.c.kyc_approved_at)
                             .where(t.c.is_test.is_(False)), conn).set_index("trader_id")
        trades = pd.read_sql(sa.select(schema.trades.c.trader_id, schema.trades.c.opened_at.label("start"),
                                       schema.trades.c.closed_at.label("stop")), conn).assign(kind="trade")
        deposits = pd.read_sql(sa.select(tx.c.trader_id, tx.c.created_at.label("start"))
                               .where(tx.c.kind == "deposit", tx.c.status == "approved"), conn).assign(kind="deposit")
        logins = pd.read_sql(sa.select(s.c.trader_id, s.c.started_at.label("start")), conn).assign(kind="login")
    instants = pd.concat([deposits, logins])
    acts = pd.concat([trades, instants.assign(stop=instants["start"])], ignore_index=True)
    # Any event captures a trader; only trading and the setting's activity keep one alive.
    acts["alive"] = acts["kind"].isin(["trade", "deposit"] + (["login"] if setting == "any" else []))
    acts["stop"] = acts[["start", "stop"]].max(axis=1)

    seen: set[str] = set()
    # 1 October: the simulator (equity-bounded since f7275ff) has a reactivated trader then.
    for day, dormant_days, churn_days in [(date(2026, 10, 31), 7, 30), (date(2026, 9, 15), 14, 60),
                                          (date(2026, 7, 1), 3, 90), (date(2026, 10, 1), 7, 30)]:
        got = compute_stage_distribution(engine, as_of=day, dormant_days=dormant_days, churn_days=churn_days)
        expected = stages_in_python(people, acts, day, dormant_days, churn_days)
        assert counts(got) == expected, (day, dormant_days, churn_days)
        seen |= set(expected)
    assert seen == set(STAGES)  # every rule was exercised
