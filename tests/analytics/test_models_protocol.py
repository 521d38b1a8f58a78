"""The training protocol of analytics/models (labels.py, dataset.py) on DuckDB and PostgreSQL.

- Populations and outcomes of churn, deposit and FTD on hand-made traders, each placed on an edge
  of its window (exactly at T − 30 d, T and T + H, one second before them) and with the events that
  must not count (declined, pending and reversed deposits, withdrawals, portal events).
- The same edges under a reporting zone with a change of clocks inside the window: windows are
  whole local days, not 24-hour multiples.
- The snapshot plan: its dates, windows that do not overlap and end by the cut-off, the earliest
  cut-off the history allows and the message when it is too short.
- No leakage: on a simulated broker, events added at and after the cut-off T leave every training
  row (X and y of every snapshot) and every score at T unchanged, while the same events are seen
  from one day later.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.features import compute_features
from analytics.models import dataset, registry
from analytics.models.dataset import (
    NotEnoughHistory,
    labelled_snapshot,
    plan_snapshots,
    scoring_snapshot,
    training_data,
)
from analytics.models.labels import labelled, population, shift
from analytics.models.registry import save_run
from analytics.models.scoring import score_model
from analytics.models.specs import CHURN, DEPOSIT, FTD, ModelSpec
from analytics.models.training import train_model
from analytics.periods import local_date
from connectors import clock, database, schema
from connectors.clock import reporting_zone
from connectors.errors import TraderLensError
from connectors.rollups import refresh_rollups
from connectors.simulator import SimulationConfig, seed_database

D = timedelta(days=1)
S = timedelta(seconds=1)
T = datetime(2026, 10, 1)  # the reporting zone is UTC unless a test sets one: the date's midnight
NEW_YORK = "America/New_York"  # clocks go back on Sunday 1 November 2026 (EDT, UTC-4 -> EST, UTC-5)


class Book:
    """Hand-made rows: traders, positions, ledger entries, sessions and portal events."""

    def __init__(self) -> None:
        self.rows: dict[sa.Table, list[dict]] = {t: [] for t in (schema.traders, schema.trades, schema.transactions,
                                                                  schema.sessions, schema.portal_events)}

    def _add(self, table: sa.Table, key: str, **values) -> None:
        n = len(self.rows[table]) + 1
        self.rows[table].append({key: n, "external_id": f"{table.name}-{n}", **values})

    def trader(self, tid: int, registered: datetime | None = T - 100 * D, *, test: bool = False) -> None:
        self.rows[schema.traders].append({"trader_id": tid, "external_id": f"T{tid}", "registered_at": registered,
                                          "lead_at": T - 200 * D, "is_test": test})

    def trade(self, tid: int, opened: datetime, closed: datetime | None = None) -> None:
        self._add(schema.trades, "trade_id", trader_id=tid, symbol="EURUSD", asset_class="fx", side="buy", lots=1,
                  notional_usd=100_000, opened_at=opened, closed_at=closed or opened + timedelta(hours=1),
                  open_price=1.0, close_price=1.0, profit_usd=-10)

    def money(self, tid: int, at: datetime, kind: str = "deposit", status: str = "approved", usd: float = 100) -> None:
        self._add(schema.transactions, "txn_id", trader_id=tid, kind=kind, status=status, amount=usd,
                  currency="USD", amount_usd=usd, created_at=at)

    def session(self, tid: int, at: datetime) -> None:
        self._add(schema.sessions, "session_id", trader_id=tid, started_at=at, duration_s=300, surface="web")

    def portal(self, tid: int, at: datetime) -> None:
        self._add(schema.portal_events, "portal_event_id", trader_id=tid, event="page_view", occurred_at=at)

    def write(self, engine: sa.Engine) -> None:
        with engine.begin() as conn:
            for table, rows in self.rows.items():
                if rows:
                    database.bulk_insert(conn, table, pd.DataFrame(rows))


def _labels(engine: sa.Engine, spec: ModelSpec, at: datetime) -> dict[int, int]:
    """{trader_id: label} of the model's population at ``at``, straight from the SQL."""
    with engine.connect() as conn:
        return {int(t): int(y) for t, y in conn.execute(labelled(spec, at))}


def _population(engine: sa.Engine, spec: ModelSpec, at: datetime) -> set[int]:
    with engine.connect() as conn:
        return {int(t) for (t,) in conn.execute(population(spec, at))}


# ---- hand-made traders in UTC ------------------------------------------------------------------

# churn at T: population = a position opened or closed in [T-30d, T); churned (1) = no position
# opened or closed, no approved deposit and no session in [T, T+30d).
CHURN_EXPECTED = {1: 1, 2: 0, 4: 0, 5: 1, 6: 1, 7: 1, 8: 0, 10: 0, 11: 1, 12: 1}
# deposit at T: population = an approved deposit before T; 1 = an approved deposit in [T, T+7d).
DEPOSIT_EXPECTED = {20: 0, 23: 1, 24: 0, 25: 0}
# ftd at T: population = registered before T without a first deposit (approved, or reversed or
# charged back later) before T; 1 = the first deposit in [T, T+14d).
FTD_EXPECTED = {**{t: 0 for t in range(1, 13)}, 21: 0, 22: 1, 27: 1, 30: 0, 31: 1, 33: 1, 34: 0, 36: 1, 37: 0}


def _hand_made() -> Book:
    b = Book()
    for tid in (*range(1, 13), 20, 21, 22, 23, 24, 25, 26, 27):
        b.trader(tid, test=tid == 12)
    # -- churn
    b.trade(1, T - 30 * D)  # opened exactly at T-30d: active; nothing after T: churned
    b.trade(2, T - 45 * D, closed=T - 20 * D)  # only closed in the window: active
    b.session(2, T)  # a session exactly at T: not churned
    b.trade(3, T - 31 * D, closed=T - 30 * D - S)  # opened and closed before the window: not active
    b.trade(4, T - 2 * D)
    b.money(4, T + 30 * D - S)  # an approved deposit on the window's last second: not churned
    b.trade(5, T - 5 * D)
    b.money(5, T + 30 * D)  # ... and on its end: churned
    b.trade(6, T - 5 * D)
    b.money(6, T + D, status="declined")
    b.money(6, T + 2 * D, status="pending")
    b.money(6, T + 3 * D, kind="withdrawal")
    b.portal(6, T + 4 * D)  # none of these is activity: churned
    b.trade(7, T - 5 * D)
    b.session(7, T - S)
    b.session(7, T + 30 * D)  # a session on the window's end: churned
    b.trade(8, T - 10 * D, closed=T + 5 * D)  # open at T, closed in the window: not churned
    b.trade(9, T - 60 * D)
    b.trade(9, T)  # opened exactly at T: not active at T
    b.trade(10, T - S, closed=T - S / 2)
    b.trade(10, T + 30 * D - S)  # opened on the window's last second: not churned
    b.trade(11, T - 3 * D)
    b.trade(11, T + 30 * D)  # opened on the window's end: churned
    b.trade(12, T - 3 * D)  # a test account: in the SQL population, not in the training rows
    # -- deposit
    b.money(20, T - S)  # funded one second before T, nothing after
    b.money(21, T - 20 * D, status="declined")
    b.money(21, T - 10 * D, status="pending")  # never funded
    b.money(22, T)  # funded exactly at T: not funded before it (and that is its FTD)
    b.money(23, T - 50 * D)
    b.money(23, T + 7 * D - S)  # a deposit on the window's last second
    b.money(24, T - 50 * D)
    b.money(24, T + 7 * D)  # ... and on its end
    b.money(25, T - 50 * D)
    b.money(25, T + D, status="declined")
    b.money(25, T + 2 * D, kind="withdrawal")
    b.money(25, T + 3 * D, kind="bonus")
    b.money(26, T - 10 * D, status="reversed")  # taken back: not funded, but it was the FTD
    b.money(27, T + 3 * D)  # first deposit after T
    # -- ftd
    b.trader(30, T - 5 * D)
    b.trader(31, T - S)
    b.money(31, T)  # registered a second before T, FTD exactly at T
    b.trader(32, T)  # registered exactly at T: not in the population
    b.trader(33, T - 20 * D)
    b.money(33, T - 10 * D, status="declined")
    b.money(33, T + 14 * D - S)
    b.trader(34, T - 20 * D)
    b.money(34, T + 14 * D)  # on the window's end
    b.trader(35, T - 20 * D)
    b.money(35, T - 3 * D, status="reversed")  # an FTD before T, taken back later
    b.trader(36, T - 20 * D)
    b.money(36, T + 2 * D, status="chargeback")  # an FTD charged back later is still the FTD
    b.trader(37, T - 20 * D)
    b.money(37, T + D, status="pending")
    b.trader(38, T - 20 * D)
    b.money(38, T - D, status="reversed")
    b.money(38, T + 5 * D)
    b.trader(39, None)  # a lead, never registered
    return b


@pytest.fixture
def hand_made(engine) -> sa.Engine:
    _hand_made().write(engine)
    return engine


def test_churn_population_and_outcome_by_hand(hand_made):
    assert _labels(hand_made, CHURN, T) == CHURN_EXPECTED


def test_deposit_population_and_outcome_by_hand(hand_made):
    assert _labels(hand_made, DEPOSIT, T) == DEPOSIT_EXPECTED


def test_ftd_population_and_outcome_by_hand(hand_made):
    assert _labels(hand_made, FTD, T) == FTD_EXPECTED


def test_labelled_rows_are_the_population_without_test_accounts(hand_made):
    """The training rows of a snapshot: the SQL population among the feature snapshot's traders
    (registered before T, test accounts left out), with the same labels and features as of T."""
    snap = labelled_snapshot(hand_made, CHURN, T)
    expected = {t: y for t, y in CHURN_EXPECTED.items() if t != 12}
    assert dict(zip(snap.y.index, snap.y.tolist(), strict=True)) == expected
    assert list(snap.x.index) == sorted(expected) and list(snap.x.columns) == list(dataset.MODEL_FEATURES)
    features = compute_features(hand_made, as_of=T).frame
    assert snap.x["trades_30d"].tolist() == features.loc[snap.x.index, "trades_30d"].tolist()
    assert snap.x.loc[1, "days_since_last_trade"] == pytest.approx(29 + 23 / 24)  # closed 1 h after T-30d
    scoring = scoring_snapshot(hand_made, CHURN, T)
    assert scoring.y is None and list(scoring.x.index) == list(snap.x.index)
    pd.testing.assert_frame_equal(scoring.x, snap.x)


# ---- the same edges under a reporting zone with a change of clocks ------------------------------


def test_windows_are_whole_local_days_across_a_change_of_clocks(engine, monkeypatch):
    """New York: T = midnight of 20 October (04:00 UTC, EDT); T + 30 d = midnight of 19 November
    (05:00 UTC, EST): 30 local days are 721 hours. Events in the extra hour are inside the window;
    events in the hour before T are before it."""
    monkeypatch.setenv(clock.ENV, NEW_YORK)
    t = datetime(2026, 10, 20, 4)
    assert reporting_zone().to_utc(datetime(2026, 10, 20)) == t
    assert shift(t, 30) == datetime(2026, 11, 19, 5) and shift(t, -30) == datetime(2026, 9, 20, 4)
    b = Book()
    for tid in (50, 51, 52, 53, 60, 61):
        b.trader(tid, datetime(2026, 6, 1))
    b.trade(50, datetime(2026, 9, 20, 4))  # midnight of 20 September in New York: first instant of the window
    b.session(50, datetime(2026, 11, 19, 4, 30))  # 23:30 on 18 November in New York: inside the window
    b.trade(51, datetime(2026, 9, 20, 3), closed=datetime(2026, 9, 20, 3, 59, 59))  # closed 23:59:59 on 19 Sept
    b.trade(52, datetime(2026, 10, 20, 3, 59), closed=datetime(2026, 10, 20, 3, 59, 30))  # 23:59 on 19 October
    b.session(52, datetime(2026, 11, 19, 5))  # the window's end
    b.trade(53, t)  # exactly T
    # deposit at T = midnight of 28 October (04:00 UTC); T + 7 d = midnight of 4 November (05:00 UTC)
    td = datetime(2026, 10, 28, 4)
    b.money(60, td - S)
    b.money(60, datetime(2026, 11, 4, 4, 59, 59))  # 23:59:59 on 3 November: inside
    b.money(61, datetime(2026, 10, 1))
    b.money(61, datetime(2026, 11, 4, 5))  # the window's end
    # ftd at T = midnight of 25 October (04:00 UTC); T + 14 d = midnight of 8 November (05:00 UTC)
    tf = datetime(2026, 10, 25, 4)
    b.trader(70, tf - timedelta(minutes=1))
    b.money(70, datetime(2026, 11, 8, 4, 59))
    b.trader(71, tf)
    b.trader(72, tf - D)
    b.money(72, datetime(2026, 11, 8, 5))
    b.write(engine)
    churn = _labels(engine, CHURN, t)
    assert {k: churn.get(k) for k in (50, 51, 52, 53)} == {50: 0, 51: None, 52: 1, 53: None}
    deposit = _labels(engine, DEPOSIT, td)
    assert {k: deposit.get(k) for k in (60, 61)} == {60: 1, 61: 0}
    ftd = _labels(engine, FTD, tf)
    assert {k: ftd.get(k) for k in (70, 71, 72)} == {70: 1, 71: None, 72: 0}
    # Read in UTC, the same rows fall on the other side of the edges: the zone is what decides.
    monkeypatch.setenv(clock.ENV, "UTC")
    utc = _labels(engine, CHURN, datetime(2026, 10, 20))
    assert {k: utc.get(k) for k in (50, 52)} == {50: 1, 52: None}


# ---- the snapshot plan --------------------------------------------------------------------------


def _span(engine: sa.Engine, first: datetime, last: datetime) -> None:
    """One trader with a login at ``first`` and one at ``last``: the data span."""
    b = Book()
    b.trader(1, first)
    b.session(1, first)
    b.session(1, last)
    b.write(engine)


def _windows_do_not_overlap(plan: dataset.SnapshotPlan, horizon: int) -> None:
    dates = [*plan.train, plan.validation, plan.test]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    for earlier, later in itertools.pairwise(dates):
        assert shift(earlier, horizon) <= later  # a snapshot's outcome window ends where the next starts
    assert shift(plan.test, horizon) == plan.cutoff  # the newest outcome is fully known by the cut-off


def test_plan_dates_and_windows(engine):
    _span(engine, datetime(2026, 1, 1, 12), datetime(2026, 12, 31, 12))
    plan = plan_snapshots(engine, CHURN, as_of=date(2026, 12, 1))
    assert plan.cutoff == datetime(2026, 12, 1)
    assert plan.test == datetime(2026, 11, 1) and plan.validation == datetime(2026, 10, 2)
    assert plan.train == (datetime(2026, 6, 4), datetime(2026, 7, 4), datetime(2026, 8, 3), datetime(2026, 9, 2))
    _windows_do_not_overlap(plan, 30)
    # Earlier snapshots while 60 days of history come before them: from 2 March 2026 on.
    many = plan_snapshots(engine, CHURN, as_of=date(2026, 12, 1), train_snapshots=20)
    assert many.train[0] == datetime(2026, 3, 6) and len(many.train) == 7
    _windows_do_not_overlap(many, 30)
    deposit = plan_snapshots(engine, DEPOSIT, as_of=date(2026, 12, 1))
    assert (deposit.test, deposit.validation) == (datetime(2026, 11, 24), datetime(2026, 11, 17))
    assert deposit.train == (datetime(2026, 10, 20), datetime(2026, 10, 27), datetime(2026, 11, 3),
                             datetime(2026, 11, 10))
    _windows_do_not_overlap(deposit, 7)
    ftd = plan_snapshots(engine, FTD, as_of=datetime(2026, 12, 1))
    _windows_do_not_overlap(ftd, 14)
    assert plan.to_json()["train"][0] == "2026-06-04T00:00:00"


def test_plan_dates_are_local_midnights(engine, monkeypatch):
    monkeypatch.setenv(clock.ENV, NEW_YORK)
    _span(engine, datetime(2026, 1, 1, 12), datetime(2026, 12, 31, 12))
    plan = plan_snapshots(engine, CHURN, as_of=date(2026, 12, 1))
    zone = reporting_zone()
    for at in (*plan.train, plan.validation, plan.test, plan.cutoff):
        assert zone.to_local(at).time() == time(0)
    assert plan.test == datetime(2026, 11, 1, 4) and plan.cutoff == datetime(2026, 12, 1, 5)  # EDT, EST
    assert local_date(plan.validation) == date(2026, 10, 2)
    _windows_do_not_overlap(plan, 30)


def test_too_short_history_says_what_it_needs(engine):
    with pytest.raises(NotEnoughHistory, match="holds no events"):
        plan_snapshots(engine, CHURN, as_of=date(2026, 12, 1))
    with pytest.raises(TraderLensError, match=r"import data or run `python cli\.py seed`"):
        plan_snapshots(engine, CHURN)
    _span(engine, datetime(2026, 1, 1, 12), datetime(2026, 12, 31, 12))
    # 60 days of history (from 2 March) and three 30-day windows: a cut-off on 31 May or later.
    with pytest.raises(NotEnoughHistory) as refused:
        plan_snapshots(engine, CHURN, as_of=date(2026, 5, 30))
    message = str(refused.value)
    assert "60 days of history" in message and "three windows of 30 days" in message
    assert "the cut-off must be 2026-05-31 or later (it is 2026-05-30)" in message
    edge = plan_snapshots(engine, CHURN, as_of=date(2026, 5, 31))
    assert edge.train == (datetime(2026, 3, 2),)
    with pytest.raises(NotEnoughHistory, match="2026-03-23 or later"):
        plan_snapshots(engine, DEPOSIT, as_of=date(2026, 3, 22))
    # Enough days, too few traders: the rows say so with the numbers.
    with pytest.raises(NotEnoughHistory) as few:
        training_data(engine, CHURN, edge)
    assert f"at least {dataset.MIN_ROWS} traders and {dataset.MIN_POSITIVES} of each outcome" in str(few.value)
    assert "are 0 traders with 0 positive outcomes" in str(few.value)


def test_a_cutoff_past_the_end_of_the_data_is_refused(engine):
    """Labels need their whole window observed: with data up to 31 December, the newest cut-off is
    1 January (the default). A later one would label the last snapshot from days without data
    (every trader "churned" in them, nobody "deposited") and must be refused, naming the last day."""
    _span(engine, datetime(2026, 1, 1, 12), datetime(2026, 12, 31, 12))
    assert plan_snapshots(engine, CHURN).cutoff == datetime(2027, 1, 1)
    assert plan_snapshots(engine, CHURN, as_of=date(2027, 1, 1)).cutoff == datetime(2027, 1, 1)
    for spec in (CHURN, DEPOSIT, FTD):
        with pytest.raises(TraderLensError, match="2026-12-31"):
            plan_snapshots(engine, spec, as_of=date(2027, 1, 16))


# ---- no leakage ---------------------------------------------------------------------------------

LEAK_BROKER = SimulationConfig(traders=4_000, days=160, seed=5, end=date(2026, 11, 1))
CUTOFF = datetime(2026, 11, 1)  # the local midnight after the broker's last day
LEAK_MONEY = (("deposit", "approved"), ("withdrawal", "declined"))


def _reset_models(engine: sa.Engine) -> None:
    """No saved model, score or job (the session's PostgreSQL database keeps them between modules),
    and no booster cached for a run id that a new run will reuse."""
    with engine.begin() as conn:
        for table in (schema.model_jobs, schema.model_scores, schema.score_runs, schema.model_runs):
            conn.execute(table.delete())
    registry._BOOSTERS.clear()


def _events_at_and_after(engine: sa.Engine, at: datetime, churned: list[int], active: list[int]) -> None:
    """Every kind of event from ``at`` on: the ``churned`` traders trade, log in, deposit and have a
    withdrawal declined exactly at ``at``; the ``active`` ones do the same over the next 40 days;
    a new trader registers at ``at`` and trades at once."""
    with engine.connect() as conn:
        top = {t: conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.primary_key.columns[0]), 0))).scalar() + 1000
               for t in (schema.traders, schema.trades, schema.transactions, schema.sessions)}
    new = top[schema.traders]
    people = [(t, at) for t in churned] + [(t, at + timedelta(days=1 + 3 * i, hours=5)) for i, t in enumerate(active)]
    people.append((new, at))
    rows = {
        schema.traders: [{"trader_id": new, "external_id": "NEW-AT-CUTOFF", "registered_at": at}],
        schema.trades: [{"trade_id": top[schema.trades] + i, "external_id": f"LEAK-D{i}", "trader_id": t,
                         "symbol": "BTCUSD", "asset_class": "crypto", "side": "buy", "lots": 3, "notional_usd": 5e5,
                         "opened_at": when, "closed_at": when + timedelta(minutes=5), "open_price": 1.0,
                         "close_price": 1.0, "profit_usd": 900, "leverage_used": 50, "channel": "expert"}
                        for i, (t, when) in enumerate(people)],
        schema.transactions: [{"txn_id": top[schema.transactions] + 2 * i + k, "external_id": f"LEAK-X{i}-{k}",
                               "trader_id": t, "kind": kind, "status": status, "amount": 700, "currency": "USD",
                               "amount_usd": 700, "created_at": when}
                              for i, (t, when) in enumerate(people)
                              for k, (kind, status) in enumerate(LEAK_MONEY)],
        schema.sessions: [{"session_id": top[schema.sessions] + i, "external_id": f"LEAK-S{i}", "trader_id": t,
                           "started_at": when, "duration_s": 3600, "surface": "mobile"}
                          for i, (t, when) in enumerate(people)],
    }
    with engine.begin() as conn:
        for table, values in rows.items():
            database.bulk_insert(conn, table, pd.DataFrame(values))
        refresh_rollups(conn)  # what an import does after writing


def _assert_same_snapshot(a: dataset.Snapshot, b: dataset.Snapshot) -> None:
    assert a.at == b.at
    pd.testing.assert_frame_equal(a.x, b.x, check_exact=True)
    pd.testing.assert_series_equal(a.y, b.y, check_exact=True)


def test_events_after_the_cutoff_change_no_training_row_and_no_score(engine):
    seed_database(engine, LEAK_BROKER)
    _reset_models(engine)
    spec = CHURN
    trained = train_model(engine, spec, as_of=CUTOFF.date(), train_snapshots=1)
    save_run(engine, trained, by="test", features=dataset.MODEL_FEATURES)
    plan = trained.plan
    assert plan.cutoff == CUTOFF and shift(plan.test, spec.horizon_days) == CUTOFF
    before = training_data(engine, spec, plan)
    scored = score_model(engine, spec, by="test", as_of=CUTOFF).frame

    # Churned traders of the newest labelled snapshot (their window ends at the cut-off) come back
    # exactly at it; traders scored at the cut-off are active after it.
    newest_y = pd.concat([before.calibration.y, before.test.y])
    churned = newest_y[newest_y == 1].index[:6].tolist()
    active = scored.index[:6].tolist()
    assert len(churned) == 6 and len(active) == 6
    _events_at_and_after(engine, CUTOFF, churned, active)

    assert plan_snapshots(engine, spec, as_of=CUTOFF.date(), train_snapshots=1) == plan
    after = training_data(engine, spec, plan)
    pd.testing.assert_frame_equal(before.train_x, after.train_x, check_exact=True)
    pd.testing.assert_series_equal(before.train_y, after.train_y, check_exact=True)
    pd.testing.assert_series_equal(before.train_at, after.train_at, check_exact=True)
    for role in ("validation", "calibration", "test"):
        _assert_same_snapshot(getattr(before, role), getattr(after, role))
    rescored = score_model(engine, spec, by="test", as_of=CUTOFF).frame
    assert list(rescored.index) == list(scored.index)
    assert np.array_equal(rescored["probability"].to_numpy(), scored["probability"].to_numpy())
    assert rescored["band"].tolist() == scored["band"].tolist()
    assert rescored["decile"].tolist() == scored["decile"].tolist()
    assert rescored["explanation"].tolist() == scored["explanation"].tolist()

    # The same events are seen from one day later: the comparison above could fail.
    later = compute_features(engine, as_of=CUTOFF + D, trader_ids=churned).frame
    assert (later["days_since_last_trade"] <= 1).all() and (later["days_since_last_login"] <= 1).all()
    moved = _labels(engine, spec, plan.test + D)
    assert [moved[t] for t in churned if t in moved] == [0] * len([t for t in churned if t in moved])
    assert any(t in moved for t in churned)
    _reset_models(engine)
