"""The Overview says under the FTD tile how many of the period's first deposits were charged back."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from analytics.filters import TraderFilter
from analytics.kpis import compute_kpis
from components.kpi_tiles import format_value
from connectors import database
from connectors.rollups import refresh_rollups
from connectors.schema import first_deposits, transactions
from connectors.simulator import SimulationConfig
from tests.app.test_overview_page import default_view


@pytest.fixture
def broker_url(seeded_broker, use_broker) -> str:
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=150, seed=5, end=date(2026, 11, 1))))


def _charge_back_two_ftds(url: str) -> float:
    """Mark the two newest FTD deposits charged back (as a re-import would); their USD."""
    engine = database.get_engine(url)
    try:
        with engine.begin() as conn:
            newest = first_deposits(form="detail").subquery()
            rows = conn.execute(sa.select(newest.c.txn_id, newest.c.amount_usd)
                                .order_by(newest.c.occurred_at.desc()).limit(2)).all()
            conn.execute(transactions.update().where(transactions.c.txn_id.in_([r.txn_id for r in rows]))
                         .values(status="chargeback"))
            refresh_rollups(conn)
    finally:
        engine.dispose()
        database.dispose_engines()
    return sum(float(r.amount_usd) for r in rows)


def test_the_ftd_tile_carries_a_line_with_the_ftds_charged_back(broker_url, open_page):
    amount = _charge_back_two_ftds(broker_url)
    engine = database.get_engine(broker_url)
    try:
        kpis = {k.key: k.value for k in compute_kpis(engine, date_range=default_view(broker_url),
                                                     trader_filter=TraderFilter())}
    finally:
        engine.dispose()
        database.dispose_engines()
    assert kpis["ftds_charged_back"] >= 1  # the default filter may leave out a test account

    at = open_page()

    assert not at.exception and not at.error
    lines = [c.value for c in at.caption if "charged back" in c.value]
    expected = (f"{format_value(kpis['ftds_charged_back'], 'count')} charged back or reversed since "
                f"({format_value(kpis['ftds_charged_back_usd'], 'usd')})")
    assert lines == [expected]
    assert kpis["ftds_charged_back_usd"] <= round(amount, 2)
