"""Trader 360's reads (analytics/trader360.py) on DuckDB and PostgreSQL: the search (exact first, prefix,
anywhere, case, hostile text), the profile and key figures against SQL written here, the timeline
against the raw rows (and per day beyond its limit), the stage, the feature comparison against pandas
over the materialised snapshot, and memberships.

One simulated broker (300 traders over 120 days) per backend for the module, plus three hand-made
traders whose names and ids the search tests need.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import lifecycle
from analytics import trader360 as t360
from analytics.features import FEATURE_NAMES, compute_features, feature_table, materialise_features
from analytics.filters import EVERYONE
from connectors import database, schema
from connectors.rollups import refresh_rollups
from connectors.simulator import SimulationConfig, seed_database
from tests.conftest import module_database

END = date(2026, 11, 1)
SEGMENT_TABLES = (schema.segment_changes, schema.segment_members, schema.segment_versions, schema.segments,
                  schema.cluster_assignments, schema.clustering_runs)
# Hand-made traders (ids far above the simulator's): names, e-mails and logins the search tests rely on.
ZOE, ZED, PCT = 90_001, 90_002, 90_003
HOSTILE = ["%", "_", "\\", "'", "' OR 1=1 --", "'; DROP TABLE traders; --", '" OR ""="', "%' --", "%%", "a%",
           "_%_", "\\%", "[a-z]", "*", ".*", "<script>alert(1)</script>", "${jndi:ldap://x}", "😀", "İ", "ß"]


def _hand_made(conn) -> None:
    at = datetime(2026, 10, 20, 9)
    conn.execute(schema.traders.insert(), [
        {"trader_id": ZOE, "external_id": "ZX-100", "first_name": "Zoë", "last_name": "Quartermain",
         "email": "zoe.q@broker.example", "registered_at": at, "country": "DE", "kyc_status": "none"},
        {"trader_id": ZED, "external_id": "ZX-1000", "first_name": "Zed", "last_name": "Quartz",
         "email": "zed@broker.example", "registered_at": at, "country": "FR", "kyc_status": "none"},
        # Wildcards in the data: a search for "%" or "_" must find this one and only this one.
        {"trader_id": PCT, "external_id": "PCT_50%", "first_name": "Per", "last_name": "Cent",
         "email": "per_cent%@broker.example", "registered_at": at, "country": "GB", "kyc_status": "none"},
    ])
    conn.execute(schema.accounts.insert(), [
        {"account_id": 990_001, "external_id": "ZX-ACC-1", "trader_id": ZED, "platform": "MT5",
         "login": "77001234", "currency": "EUR", "leverage": 30, "opened_at": at},
    ])


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def broker(request, tmp_path_factory) -> Iterator[sa.Engine]:
    """The module's broker on each backend: simulated, the hand-made traders, the feature snapshot
    materialised, no segments."""
    engine = module_database(request, tmp_path_factory, "t360")
    seed_database(engine, SimulationConfig(traders=300, days=120, seed=5, end=END))
    with engine.begin() as conn:
        _hand_made(conn)
        refresh_rollups(conn, [ZOE, ZED, PCT])
    materialise_features(engine)
    yield engine
    with engine.begin() as conn:
        for table in SEGMENT_TABLES:
            conn.execute(table.delete())
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {feature_table().name}"))
    database.dispose_engines()


def _busiest(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT trader_id FROM trades GROUP BY trader_id ORDER BY count(*) DESC, "
                                    "trader_id LIMIT 1")).scalar_one()


def _rows(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql), params).all()]


# --- search -----------------------------------------------------------------------------------------


def test_a_whole_id_comes_first_then_ids_it_starts(broker):
    found = t360.search_traders(broker, "zx-100").matches
    assert list(found["external_id"]) == ["ZX-100", "ZX-1000"]  # case-insensitive; exact, then prefix
    assert list(found["exact"]) == [True, False] and list(found["matched_on"]) == ["id", "id"]


def test_names_emails_and_logins_are_found_anywhere_in_them(broker):
    by_name = t360.search_traders(broker, "QUART").matches
    assert set(by_name["external_id"]) == {"ZX-100", "ZX-1000"} and set(by_name["matched_on"]) == {"name"}
    full = t360.search_traders(broker, "zoë quartermain").matches
    assert list(full["external_id"]) == ["ZX-100"] and bool(full["exact"].iloc[0])
    email = t360.search_traders(broker, "ZED@BROKER.EXAMPLE").matches
    assert list(email["external_id"]) == ["ZX-1000"] and email["matched_on"].iloc[0] == "email"
    login = t360.search_traders(broker, "7700123").matches  # a prefix of the platform login
    assert list(login["external_id"]) == ["ZX-1000"] and login["matched_on"].iloc[0] == "login"
    assert not login["exact"].iloc[0]
    assert bool(t360.search_traders(broker, "77001234").matches["exact"].iloc[0])


def test_a_search_shows_at_most_twenty_and_says_there_are_more(broker):
    result = t360.search_traders(broker, "sim-")  # all 300 simulated traders' ids start so
    assert len(result.matches) == t360.SEARCH_LIMIT and result.more
    assert list(result.matches["external_id"]) == sorted(result.matches["external_id"])
    assert not t360.search_traders(broker, "ZX-100").more


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_search_text_is_a_literal_and_changes_nothing(broker, text):
    with broker.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM traders")).scalar_one()
    found = t360.search_traders(broker, text).matches
    needle = text.strip().lower()
    # Every match holds the text literally (no wildcard or injection matched more).
    for _, row in found.iterrows():
        fields = [row["external_id"], row["email"] or "", row["name"] or ""]
        assert any(needle in f.lower() for f in fields) or row["matched_on"] == "login", (text, row.to_dict())
    if text in ("%", "_", "%%", "_%_"):  # unescaped, each would match every trader
        assert found.empty
    with broker.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM traders")).scalar_one() == before


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31m", "tab\there", "x" * 201])
def test_control_characters_and_very_long_text_are_refused_with_a_reason(broker, text):
    with pytest.raises(t360.BadSearch, match=r"control|longer"):
        t360.search_traders(broker, text)


@pytest.mark.parametrize("text", ["50%", "t_5", "T_50%"])
def test_wildcards_in_the_text_match_themselves(broker, text):
    assert list(t360.search_traders(broker, text).matches["external_id"]) == ["PCT_50%"]


def test_one_or_two_characters_match_the_start_of_a_field_only(broker):
    found = t360.search_traders(broker, "zo").matches  # "Zoë Quartermain" starts so; no trader's id does
    assert list(found["external_id"]) == ["ZX-100"] and found["matched_on"].iloc[0] == "name"
    assert t360.search_traders(broker, "oë").matches.empty  # inside the name: needs three characters
    assert list(t360.search_traders(broker, "zoë").matches["external_id"]) == ["ZX-100"]


def test_empty_text_finds_nobody(broker):
    assert t360.search_traders(broker, "   ").matches.empty


def test_an_unknown_id_says_so(broker):
    with pytest.raises(t360.TraderNotFound, match="NOPE-1"):
        t360.find_trader_id(broker, "NOPE-1")
    with pytest.raises(t360.TraderNotFound):
        t360.find_trader_id(broker, "zx-100")  # a link names the id exactly
    assert t360.find_trader_id(broker, "ZX-100") == ZOE
    with pytest.raises(t360.BadSearch):
        t360.find_trader_id(broker, "ZX\x00100")


# --- profile and key figures ---------------------------------------------------------------------------


def test_profile_is_the_traders_row_and_their_accounts(broker):
    trader_id = _busiest(broker)
    profile = t360.load_profile(broker, trader_id)
    (external_id, email, phone, country, owner, kyc, consent_sms) = _rows(
        broker, "SELECT external_id, email, phone, country, owner, kyc_status, consent_sms FROM traders "
                "WHERE trader_id = :t", t=trader_id)[0]
    assert (profile.external_id, profile.email, profile.phone, profile.country, profile.owner, profile.kyc_status,
            profile.consents["sms"]) == (external_id, email, phone, country, owner, kyc, bool(consent_sms))
    accounts = _rows(broker, "SELECT a.login, a.platform, a.leverage, (SELECT count(*) FROM trades d WHERE "
                             "d.account_id = a.account_id) FROM accounts a WHERE a.trader_id = :t "
                             "ORDER BY a.opened_at, a.account_id", t=trader_id)
    assert [tuple(r) for r in profile.accounts[["login", "platform", "leverage", "trades"]].itertuples(index=False)] \
        == accounts
    with pytest.raises(t360.TraderNotFound):
        t360.load_profile(broker, 123_456_789)


def test_key_figures_match_sql(broker):
    trader_id = _busiest(broker)
    figures = t360.compute_key_figures(broker, trader_id)
    ((deposits, dep_usd),) = _rows(broker, "SELECT count(*), coalesce(sum(amount_usd), 0) FROM transactions WHERE "
                                           "trader_id = :t AND kind = 'deposit' AND status = 'approved'", t=trader_id)
    ((withdrawals, wd_usd),) = _rows(broker, "SELECT count(*), coalesce(sum(amount_usd), 0) FROM transactions "
                                             "WHERE trader_id = :t AND kind = 'withdrawal' AND status = 'approved'",
                                     t=trader_id)
    ((trades, volume, pnl, wins, lots),) = _rows(
        broker, "SELECT count(*), sum(notional_usd), sum(profit_usd + commission_usd + swap_usd), "
                "sum(CASE WHEN profit_usd + commission_usd + swap_usd > 0 THEN 1 ELSE 0 END), sum(lots) "
                "FROM trades WHERE trader_id = :t", t=trader_id)
    ((logins, last_login),) = _rows(broker, "SELECT count(*), max(started_at) FROM sessions WHERE trader_id = :t",
                                    t=trader_id)
    assert (figures.deposits, figures.withdrawals, figures.trades, figures.logins) == (deposits, withdrawals, trades,
                                                                                       logins)
    assert figures.deposits_usd == pytest.approx(float(dep_usd))
    assert figures.withdrawals_usd == pytest.approx(float(wd_usd))
    assert figures.net_deposits_usd == pytest.approx(float(dep_usd) - float(wd_usd))
    assert figures.volume_usd == pytest.approx(float(volume))
    assert figures.realised_pnl_usd == pytest.approx(float(pnl))
    assert figures.lots == pytest.approx(float(lots))
    assert figures.winning_trades == wins and figures.last_login_at == last_login
    ((first, last),) = _rows(broker, """
        SELECT min(x), max(x) FROM (
          SELECT coalesce(lead_at, registered_at) AS x FROM traders WHERE trader_id = :t
          UNION ALL SELECT opened_at FROM trades WHERE trader_id = :t UNION ALL SELECT closed_at FROM trades
            WHERE trader_id = :t
          UNION ALL SELECT created_at FROM transactions WHERE trader_id = :t
          UNION ALL SELECT started_at FROM sessions WHERE trader_id = :t
          UNION ALL SELECT occurred_at FROM kyc_events WHERE trader_id = :t
          UNION ALL SELECT occurred_at FROM portal_events WHERE trader_id = :t) e""", t=trader_id)
    assert (figures.first_activity_at, figures.last_activity_at) == (first, last)


def test_a_trader_without_activity_has_zero_figures(broker):
    figures = t360.compute_key_figures(broker, ZOE)
    assert (figures.trades, figures.deposits, figures.deposits_usd, figures.win_rate, figures.ftd_at) == (
        0, 0, 0.0, None, None)
    assert figures.first_activity_at == figures.last_activity_at == datetime(2026, 10, 20, 9)


# --- timeline -------------------------------------------------------------------------------------------


def _expected_counts(engine: sa.Engine, trader_id: int) -> dict[str, int]:
    def one(sql: str) -> int:
        return _rows(engine, sql, t=trader_id)[0][0]

    return {
        "Deposits": one("SELECT count(*) FROM transactions WHERE trader_id = :t AND kind = 'deposit'"),
        "Withdrawals": one("SELECT count(*) FROM transactions WHERE trader_id = :t AND kind = 'withdrawal'"),
        "Other money": one("SELECT count(*) FROM transactions WHERE trader_id = :t AND kind NOT IN "
                           "('deposit', 'withdrawal')"),
        "Positions opened": one("SELECT count(*) FROM trades WHERE trader_id = :t"),
        "Positions closed": one("SELECT count(*) FROM trades WHERE trader_id = :t"),
        "Logins": one("SELECT count(*) FROM sessions WHERE trader_id = :t"),
        "Portal": one("SELECT count(*) FROM portal_events WHERE trader_id = :t"),
        "Onboarding": one("SELECT (SELECT count(*) FROM kyc_events WHERE trader_id = :t) + (SELECT count(*) FROM "
                          "accounts WHERE trader_id = :t) + (SELECT count(lead_at) + count(registered_at) FROM "
                          "traders WHERE trader_id = :t)"),
    }


def test_the_timeline_holds_every_row_of_the_trader_once(broker):
    trader_id = _busiest(broker)
    timeline = t360.compute_timeline(broker, trader_id)
    points = timeline.points
    assert timeline.per_day == () and (points["events"] == 1).all()
    got = points.groupby("lane").size().to_dict()
    assert {lane: n for lane, n in _expected_counts(broker, trader_id).items() if n} == got
    assert list(points.columns) == t360.TIMELINE_COLUMNS and points["occurred_at"].is_monotonic_increasing
    deposits = points[points["kind"] == "deposit"]
    expected = _rows(broker, "SELECT created_at, status, amount_usd FROM transactions WHERE trader_id = :t AND "
                             "kind = 'deposit' ORDER BY created_at", t=trader_id)
    assert [(a, s, pytest.approx(float(u))) for a, s, u in expected] == [
        (a.to_pydatetime(), s, u) for a, s, u in zip(deposits["occurred_at"], deposits["status"],
                                                     deposits["amount_usd"], strict=True)]
    closed = points[points["kind"] == "trade_closed"]
    ((pnl, profits),) = _rows(broker, "SELECT sum(profit_usd + commission_usd + swap_usd), sum(CASE WHEN profit_usd "
                                      "+ commission_usd + swap_usd >= 0 THEN 1 ELSE 0 END) FROM trades "
                                      "WHERE trader_id = :t", t=trader_id)
    assert closed["amount_usd"].sum() == pytest.approx(float(pnl))
    assert (closed["status"] == "profit").sum() == profits


def test_beyond_the_limit_a_source_is_drawn_per_day_with_the_same_totals(broker):
    trader_id = _busiest(broker)
    every = t360.compute_timeline(broker, trader_id).points
    thinned = t360.compute_timeline(broker, trader_id, max_points=40)
    assert "trades" in thinned.per_day and thinned.counts["trades"] > 40
    for lane in ("Positions opened", "Positions closed"):
        one, day = every[every["lane"] == lane], thinned.points[thinned.points["lane"] == lane]
        assert day["events"].sum() == len(one) and len(day) < len(one)
        assert day["amount_usd"].sum() == pytest.approx(one["amount_usd"].sum())
        # Each day's point sits at the day's first instant and counts that day's rows.
        per_day = one.groupby([one["occurred_at"].dt.floor("D"), "status"], dropna=False).size()
        got = day.set_index(["occurred_at", "status"])["events"]
        assert sorted(per_day.to_numpy()) == sorted(got.to_numpy())
        assert (day["occurred_at"] == day["occurred_at"].dt.floor("D")).all()


def test_a_window_keeps_only_its_days(broker):
    trader_id = _busiest(broker)
    start, end = date(2026, 10, 1), date(2026, 10, 15)
    points = t360.compute_timeline(broker, trader_id, start=start, end=end).points
    assert points["occurred_at"].min() >= pd.Timestamp(start)
    assert points["occurred_at"].max() < pd.Timestamp(end + timedelta(days=1))
    ((opened,),) = _rows(broker, "SELECT count(*) FROM trades WHERE trader_id = :t AND opened_at >= :a AND "
                                 "opened_at < :b", t=trader_id, a=datetime(2026, 10, 1), b=datetime(2026, 10, 16))
    assert (points["kind"] == "trade_opened").sum() == opened
    with pytest.raises(ValueError, match="ends"):
        t360.compute_timeline(broker, trader_id, start=end, end=start)


# --- stage ------------------------------------------------------------------------------------------------


def test_the_stage_is_the_lifecycle_ladders(broker):
    day = date(2026, 10, 31)
    stages = lifecycle.trader_stages(day, trader_filter=EVERYONE).subquery()
    with broker.connect() as conn:
        expected = dict(conn.execute(sa.select(stages.c.trader_id, stages.c.stage)).all())
    for trader_id in [_busiest(broker), ZOE, *sorted(expected)[:5]]:
        got = t360.compute_stage(broker, trader_id, day=day)
        assert got.stage == expected.get(trader_id) and got.day == day
    assert t360.compute_stage(broker, ZOE).stage == "registered"
    assert t360.compute_stage(broker, ZOE, day=date(2026, 1, 1)).stage is None  # not captured yet


# --- features ---------------------------------------------------------------------------------------------


def _members(engine: sa.Engine, segment_id: int, ids: list[int]) -> None:
    now = datetime(2026, 11, 1)
    with engine.begin() as conn:
        conn.execute(schema.segments.insert().values(
            segment_id=segment_id, name=f"Seg {segment_id}", kind="list", definition="{}", version=1, created_at=now,
            created_by="test", updated_at=now, updated_by="test", refreshed_at=now))
        conn.execute(schema.segment_members.insert(), [{"segment_id": segment_id, "trader_id": i, "entered_at": now}
                                                       for i in ids])


def _expected_stats(frame: pd.DataFrame, value: float) -> tuple[float, float, float, float]:
    values = frame.dropna().to_numpy(dtype=float)
    mean, std = values.mean(), values.std(ddof=1)
    z = (value - mean) / std if std else np.nan
    percentile = 100 * ((values < value).sum() + 0.5 * (values == value).sum()) / len(values)
    return mean, std, z, percentile


def test_features_are_compared_with_the_snapshot_and_the_peers(broker):
    trader_id = _busiest(broker)
    with broker.connect() as conn:
        snapshot = pd.read_sql(sa.select(feature_table()), conn).set_index("trader_id")
    peers = sorted(snapshot.index)[::3]
    _members(broker, 501, [*peers, trader_id])
    try:
        comparison = t360.compute_feature_comparison(broker, trader_id, peers=t360.Peers("segment", 501, "Seg 501"))
    finally:
        with broker.begin() as conn:
            conn.execute(schema.segment_members.delete())
            conn.execute(schema.segments.delete())
    mine = compute_features(broker, trader_ids=[trader_id], trader_filter=EVERYONE).frame.loc[trader_id]
    table = comparison.table.set_index("feature")
    assert list(table.index) == list(FEATURE_NAMES)
    assert comparison.population == len(snapshot) and comparison.peer_count == len(set(peers) | {trader_id})
    members = snapshot.loc[sorted(set(peers) | {trader_id})]
    for name in ("trades_per_week", "deposits_usd", "win_rate", "median_hold_s", "share_fx", "tenure_days"):
        value = float(mine[name])
        assert table.loc[name, "value"] == pytest.approx(value, nan_ok=True)
        mean, std, z, percentile = _expected_stats(snapshot[name], value)
        assert table.loc[name, ["population_mean", "population_std", "population_z", "population_percentile"]
                         ].to_numpy(dtype=float) == pytest.approx([mean, std, z, percentile], nan_ok=True)
        mean, _, z, percentile = _expected_stats(members[name], value)
        assert table.loc[name, ["segment_mean", "segment_z", "segment_percentile"]].to_numpy(dtype=float) == \
            pytest.approx([mean, z, percentile], nan_ok=True)
    assert comparison.kyc_state == mine["kyc_state"]


def test_a_current_snapshot_gives_the_traders_own_values_and_a_stale_one_is_recomputed(broker, monkeypatch):
    trader_id = _busiest(broker)
    computed = compute_features(broker, trader_ids=[trader_id], trader_filter=EVERYONE).frame.loc[trader_id]
    calls = []
    real = t360.compute_features
    monkeypatch.setattr(t360, "compute_features", lambda *a, **k: calls.append(k) or real(*a, **k))
    snapshot = t360.materialised_snapshot(broker)
    as_of, row = t360._own_features(broker, trader_id, snapshot)
    assert calls == [] and as_of == snapshot.as_of  # read from the snapshot
    for name in FEATURE_NAMES:
        assert float(row[name]) == pytest.approx(float(computed[name]), nan_ok=True), name
    # An import after the snapshot was computed: the trader's values are computed afresh.
    with broker.begin() as conn:
        conn.execute(schema.imports.insert().values(
            import_id=991, file_name="late.csv", kind="trades", sha256="0" * 64, rows_read=0, rows_inserted=0,
            rows_skipped=0, imported_at=snapshot.computed_at + timedelta(seconds=1)))
    try:
        as_of, row = t360._own_features(broker, trader_id, snapshot)
        assert len(calls) == 1 and float(row["trades_total"]) == float(computed["trades_total"])
    finally:
        with broker.begin() as conn:
            conn.execute(schema.imports.delete().where(schema.imports.c.import_id == 991))


def test_without_a_snapshot_only_the_traders_values_are_filled(broker, monkeypatch):
    monkeypatch.setattr(t360, "materialised_snapshot", lambda engine: None)
    comparison = t360.compute_feature_comparison(broker, _busiest(broker))
    assert comparison.snapshot_as_of is None and comparison.population == 0
    assert comparison.table["value"].notna().any() and comparison.table["population_mean"].isna().all()


def test_a_lead_who_never_registered_has_no_features(broker):
    with broker.begin() as conn:
        conn.execute(schema.traders.insert().values(trader_id=90_010, external_id="LEAD-1",
                                                    lead_at=datetime(2026, 10, 30), kyc_status="none"))
    try:
        comparison = t360.compute_feature_comparison(broker, 90_010)
        assert not comparison.registered and comparison.table["value"].isna().all()
    finally:
        with broker.begin() as conn:
            conn.execute(schema.traders.delete().where(schema.traders.c.trader_id == 90_010))


# --- memberships ------------------------------------------------------------------------------------------


def test_memberships_history_and_clusters(broker):
    trader_id = _busiest(broker)
    when = [datetime(2026, 10, d) for d in (1, 5, 9)]
    _members(broker, 601, [trader_id])
    _members(broker, 602, [trader_id + 1])
    with broker.begin() as conn:
        conn.execute(schema.segment_changes.insert(), [
            {"change_id": 1, "segment_id": 601, "trader_id": trader_id, "change": "entered", "changed_at": when[0],
             "version": 1},
            {"change_id": 2, "segment_id": 602, "trader_id": trader_id, "change": "entered", "changed_at": when[1],
             "version": 1},
            {"change_id": 3, "segment_id": 602, "trader_id": trader_id, "change": "left", "changed_at": when[2],
             "version": 2},
            {"change_id": 4, "segment_id": 601, "trader_id": trader_id + 1, "change": "entered",
             "changed_at": when[2], "version": 1},
        ])
        for run_id, created, clusters in ((7, when[0], [{"cluster": 2, "name": "Scalpers"}]), (8, when[2], [])):
            conn.execute(schema.clustering_runs.insert().values(
                run_id=run_id, name=f"Run {run_id}", created_at=created, created_by="test", as_of=created,
                algorithm="kmeans", k=4, seed=1, features="[]", clusters=json.dumps(clusters)))
        conn.execute(schema.cluster_assignments.insert(), [
            {"run_id": 7, "trader_id": trader_id, "cluster": 2}, {"run_id": 8, "trader_id": trader_id, "cluster": -1},
            {"run_id": 7, "trader_id": trader_id + 1, "cluster": 1}])
    try:
        got = t360.compute_memberships(broker, trader_id)
        assert list(got.segments["segment"]) == ["Seg 601"]
        assert list(got.history[["segment", "change"]].itertuples(index=False, name=None)) == [
            ("Seg 602", "left"), ("Seg 602", "entered"), ("Seg 601", "entered")]
        assert list(got.clusters[["run", "cluster", "cluster_name"]].itertuples(index=False, name=None)) == [
            ("Run 8", -1, "Noise"), ("Run 7", 2, "Scalpers")]
        # Peers to compare with: the clusters that are not noise, then the segments.
        assert [(p.kind, p.ref, p.cluster) for p in got.peer_choices()] == [("cluster", 7, 2), ("segment", 601, None)]
        comparison = t360.compute_feature_comparison(broker, trader_id, peers=got.peer_choices()[0])
        assert comparison.peer_count == 1  # the trader alone is in cluster 2 of run 7
        nobody = t360.compute_memberships(broker, ZOE)
        assert nobody.segments.empty and nobody.history.empty and nobody.clusters.empty and not nobody.peer_choices()
    finally:
        with broker.begin() as conn:
            for table in SEGMENT_TABLES:
                conn.execute(table.delete())
