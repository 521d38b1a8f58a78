"""The daily_activity rollup always agrees with the trader_events stream it summarises."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from connectors.importers import import_file
from connectors.rollups import _rollup_select
from connectors.schema import daily_activity
from connectors.simulator import SimulationConfig, seed_database


def _rollup(conn) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(sa.select(
        daily_activity.c.trader_id, daily_activity.c.event, daily_activity.c.day, daily_activity.c.events,
        daily_activity.c.amount_usd, daily_activity.c.first_at, daily_activity.c.last_at)))


def _direct(conn) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(_rollup_select()))


def test_seeding_builds_the_rollup(engine):
    seed_database(engine, SimulationConfig(traders=300, days=60, seed=4, end=date(2026, 11, 1)))
    with engine.connect() as conn:
        rolled = _rollup(conn)
        assert rolled and rolled == _direct(conn)
        events = {r[1] for r in rolled}
    assert {"registered", "ftd", "trade", "login"} <= events


def test_imports_refresh_the_rollup_for_the_traders_they_touch(engine, tmp_path):
    traders = tmp_path / "traders.csv"
    traders.write_text("external_id,registered_at,country,email\nC1,2026-03-01T10:00:00Z,DE,a@b.example\n"
                       "C2,2026-03-02T11:00:00Z,GB,c@d.example\n")
    import_file(engine, traders)
    events = tmp_path / "portal_events.csv"
    events.write_text("trader_external_id,event,occurred_at\nC1,deposit_page_view,2026-03-03T09:00:00Z\n"
                      "C1,deposit_page_view,2026-03-03T18:00:00Z\nC2,webinar_joined,2026-03-04T12:00:00Z\n")
    import_file(engine, events)
    with engine.connect() as conn:
        rolled = _rollup(conn)
        assert rolled == _direct(conn)
    by_event = {(r[0], r[1]): r[3] for r in rolled}
    assert by_event[(1, "registered")] == 1 and by_event[(1, "deposit_page_view")] == 2
    assert by_event[(2, "webinar_joined")] == 1
