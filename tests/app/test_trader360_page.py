"""The Trader 360 page through the app (AppTest), on DuckDB and PostgreSQL: searching and opening a
trader, a link that names one, the profile's numbers against SQL, the timeline's points, features and
memberships, an unknown trader, and hostile search text and links (nothing raised, nothing rendered as
Markdown, nothing written).

One simulated broker per backend for the module (300 traders over 120 days), its feature snapshot
materialised, plus a hand-made trader with a hostile name and a segment holding the busiest trader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics import lifecycle
from analytics.features import feature_table, materialise_features
from analytics.filters import EVERYONE
from components.kpi_tiles import format_value
from connectors import database, schema
from connectors.rollups import refresh_rollups
from connectors.simulator import SimulationConfig, seed_database
from tests.app.conftest import ROOT
from tests.conftest import module_database

PAGE = "pages/trader.py"
END = date(2026, 11, 1)
SEGMENT_TABLES = (schema.segment_changes, schema.segment_members, schema.segment_versions, schema.segments,
                  schema.cluster_assignments, schema.clustering_runs)
HOSTILE_NAME = "![p](http://127.0.0.1:9/p.png) <script>alert(1)</script>"
HOSTILE_ID = "ID-[x](http://127.0.0.1:9/x)"
HOSTILE_TEXT = ["' OR 1=1 --", "'; DROP TABLE traders; --", "%", "_", "\\", "![p](http://127.0.0.1:9/p.png)",
                "<script>alert(1)</script>", "**bold** :red[red] $x$", "a\x00b", "\x1b[31m", "x" * 250, "😀",
                "${jndi:ldap://127.0.0.1:9/a}", "http://127.0.0.1:9/raw"]
# Markdown that would render as a link, an image or an HTML tag (tests/app/test_hostile_query_params.py's rule).
UNESCAPED = [re.compile(r"(?<!\\)\]\(\s*<?\s*(?:https?:|//|javascript:|data:)", re.IGNORECASE),
             re.compile(r"(?<!\\)<\s*/?\s*(?:script|img|iframe|a|svg|style)\b", re.IGNORECASE),
             re.compile(r"https?://127\.0\.0\.1")]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def broker_url(request, tmp_path_factory) -> Iterator[str]:
    engine = module_database(request, tmp_path_factory, "t360_app")
    url = engine.url.render_as_string(hide_password=False)
    seed_database(engine, SimulationConfig(traders=300, days=120, seed=5, end=END))
    with engine.begin() as conn:
        conn.execute(schema.traders.insert().values(
            trader_id=90_001, external_id=HOSTILE_ID, first_name=HOSTILE_NAME, last_name="Quartermain",
            email="hostile@broker.example", registered_at=datetime(2026, 10, 20, 9), kyc_status="none"))
        refresh_rollups(conn, [90_001])
        busiest = conn.execute(sa.text("SELECT trader_id FROM trades GROUP BY trader_id ORDER BY count(*) DESC, "
                                       "trader_id LIMIT 1")).scalar_one()
        now = datetime(2026, 11, 1)
        conn.execute(schema.segments.insert().values(
            segment_id=1, name="High rollers <b>VIP</b>", kind="list", definition="{}", version=1, created_at=now,
            created_by="test", updated_at=now, updated_by="test", refreshed_at=now))
        conn.execute(schema.segment_members.insert(), [{"segment_id": 1, "trader_id": busiest, "entered_at": now}])
        conn.execute(schema.segment_changes.insert().values(change_id=1, segment_id=1, trader_id=busiest,
                                                            change="entered", changed_at=now, version=1))
    materialise_features(engine)
    database.dispose_engines()
    yield url
    engine = database.get_engine(url)
    with engine.begin() as conn:
        for table in SEGMENT_TABLES:
            conn.execute(table.delete())
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {feature_table().name}"))
    database.dispose_engines()


@pytest.fixture
def app_db(broker_url, monkeypatch) -> sa.Engine:
    """The module's broker as the app's database; an engine to check it with."""
    monkeypatch.setenv("TRADERLENS_DB_URL", broker_url)
    return database.get_engine(broker_url)


def _scalar(engine: sa.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def _busiest(engine: sa.Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(
            "SELECT t.trader_id, t.external_id FROM traders t JOIN trades d ON d.trader_id = t.trader_id "
            "GROUP BY t.trader_id, t.external_id ORDER BY count(*) DESC, t.trader_id LIMIT 1")).one())


def open_trader(query: dict[str, str | list[str]]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def timeline_points(at: AppTest):
    chart = at.get("vega_lite_chart")[0]
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
    return next(f for f in frames if "lane" in f.columns)


def markdown_texts(at: AppTest) -> list[str]:
    """The Markdown-rendered texts of the run (the app's own st.html is not data: left out)."""
    out = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if type(node).__name__ == "Html" or getattr(proto, "allow_html", False):
            continue
        for name in ("body", "label", "help", "title", "caption", "placeholder"):
            value = getattr(proto, name, None) if proto is not None and hasattr(proto, "DESCRIPTOR") and \
                name in proto.DESCRIPTOR.fields_by_name else None
            if isinstance(value, str):
                out.append(value)
    return out


def assert_nothing_unescaped(at: AppTest) -> None:
    for text in markdown_texts(at):
        for pattern in UNESCAPED:
            assert not pattern.search(text), text


def test_search_lists_matches_opens_the_chosen_one_and_a_whole_id_at_once(app_db):
    at = open_trader({})
    assert at.title[0].value == "Trader 360" and at.text_input(key="trader360.search")
    assert any("Search for a trader" in i.value for i in at.info) and not at.metric

    at.text_input(key="trader360.search").input("QUARTERMAIN").run()
    match = at.selectbox(key="trader360.match")
    assert match.options == [f"{HOSTILE_ID} · {HOSTILE_NAME} Quartermain · hostile@broker.example  (name)"]
    assert not at.metric  # nothing opened until one is chosen
    match.select(HOSTILE_ID).run()
    assert not at.exception and at.query_params["trader"] == HOSTILE_ID
    assert at.subheader[0].value.replace("\\", "").replace("\u2060", "") == f"{HOSTILE_NAME} Quartermain"
    assert_nothing_unescaped(at)

    # A whole id, in any case, that one trader has opens them without a choice.
    trader_id, external_id = _busiest(app_db)
    at.text_input(key="trader360.search").input(external_id.lower()).run()
    assert at.query_params["trader"] == external_id
    trades = _scalar(app_db, "SELECT count(*) FROM trades WHERE trader_id = :t", t=trader_id)
    assert metric(at, "Trades") == f"{trades:,}"


def test_a_link_opens_the_trader_with_figures_that_match_sql(app_db):
    trader_id, external_id = _busiest(app_db)
    at = open_trader({"trader": external_id})
    t = {"t": trader_id}
    assert metric(at, "Trades") == f"{_scalar(app_db, 'SELECT count(*) FROM trades WHERE trader_id = :t', **t):,}"
    deposits = _scalar(app_db, "SELECT coalesce(sum(amount_usd), 0) FROM transactions WHERE trader_id = :t AND "
                               "kind = 'deposit' AND status = 'approved'", **t)
    withdrawals = _scalar(app_db, "SELECT coalesce(sum(amount_usd), 0) FROM transactions WHERE trader_id = :t AND "
                                  "kind = 'withdrawal' AND status = 'approved'", **t)
    assert metric(at, "Deposits") == format_value(float(deposits), "usd")
    assert metric(at, "Net deposits") == format_value(float(deposits) - float(withdrawals), "usd")
    pnl = _scalar(app_db, "SELECT sum(profit_usd + commission_usd + swap_usd) FROM trades WHERE trader_id = :t", **t)
    assert metric(at, "Realised P&L") == format_value(float(pnl), "usd")
    volume = _scalar(app_db, "SELECT sum(notional_usd) FROM trades WHERE trader_id = :t", **t)
    assert metric(at, "Volume") == format_value(float(volume), "usd")
    # The stage badge is the lifecycle ladder's, at the newest day with data.
    stages = lifecycle.trader_stages(date(2026, 10, 31), trader_filter=EVERYONE).subquery()
    with app_db.connect() as conn:
        stage = conn.execute(sa.select(stages.c.stage).where(stages.c.trader_id == trader_id)).scalar_one()
        logins = [r[0] for r in conn.execute(sa.text("SELECT login FROM accounts WHERE trader_id = :t ORDER BY "
                                                     "opened_at, account_id"), t)]
    assert f"[{lifecycle.STAGE_LABELS[stage]}]" in at.markdown[0].value.replace("\\", "")
    accounts = next(df.value for df in at.dataframe if "login" in df.value.columns)
    assert list(accounts["login"]) == logins

    # Features against everyone (the materialised snapshot) and the trader's segment.
    peers = at.selectbox(key="trader360.peers")
    assert peers.options == ["High rollers <b>VIP</b>"]  # a select option is plain text
    table = next(df.value for df in at.dataframe if "Feature" in df.value.columns)
    assert {"Population mean", "z (population)", "Percentile (population)", "Peers' mean"} <= set(table.columns)
    assert len(table) >= 25 and table["Percentile (population)"].between(0, 100).all()
    population = _scalar(app_db, f"SELECT count(*) FROM {feature_table().name}")
    assert any(f"{population:,} traders" in c.value for c in at.caption)

    # Memberships and their history (names as plain table text).
    frames = [df.value for df in at.dataframe]
    segments = next(f for f in frames if "segment" in f.columns and "since" in f.columns)
    history = next(f for f in frames if "change" in f.columns)
    assert list(segments["segment"]) == ["High rollers <b>VIP</b>"] and list(history["change"]) == ["entered"]
    assert_nothing_unescaped(at)

    # The timeline: every row of the window (the per-day limit itself: tests/analytics/test_trader360.py).
    assert (timeline_points(at)["lane"] == "Positions opened").sum() == _scalar(
        app_db, "SELECT count(*) FROM trades WHERE trader_id = :t", **t)
    at.button_group(key="trader360.window").set_value("30").run()
    points = timeline_points(at)
    since = {"t": trader_id, "a": datetime(2026, 10, 2)}
    opened = _scalar(app_db, "SELECT count(*) FROM trades WHERE trader_id = :t AND opened_at >= :a", **since)
    logins = _scalar(app_db, "SELECT count(*) FROM sessions WHERE trader_id = :t AND started_at >= :a", **since)
    assert (points["lane"] == "Positions opened").sum() == opened and (points["lane"] == "Logins").sum() == logins
    assert (points["day_total"] == "").all() and not [c for c in at.caption if "one per day" in c.value]


def test_an_unknown_trader_says_so_and_a_link_naming_two_shows_the_first(app_db):
    at = open_trader({"trader": "NOPE-404"})
    assert any("No trader has the id" in e.value and "NOPE" in e.value for e in at.error)
    assert at.text_input(key="trader360.search") and not at.metric
    _trader_id, external_id = _busiest(app_db)
    at.query_params["trader"] = [external_id, HOSTILE_ID]
    at.run()
    assert any("more than one trader" in w.value for w in at.warning)
    assert metric(at, "Trades") != "0" and not at.error


def _fingerprint(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in ("traders", "accounts", "trades", "transactions", "segments", "segment_members")}


def test_hostile_links_and_search_text_break_nothing(app_db):
    """Every hostile value in one app session (a run each): as a link's trader, then as search text."""
    before = _fingerprint(app_db)
    at = open_trader({})
    for text in HOSTILE_TEXT:
        at.query_params["trader"] = text
        at.run()
        assert not at.exception, (text, [e.value for e in at.exception])
        # Not found, or refused for its characters: one message, escaped; never a trader.
        assert len(at.error) == 1 and not at.metric, text
        assert_nothing_unescaped(at)
    at.query_params.pop("trader")
    for text in HOSTILE_TEXT:
        at.text_input(key="trader360.search").input(text[:200]).run()
        assert not at.exception, (text, [e.value for e in at.exception])
        assert_nothing_unescaped(at)
        options = [w.options for w in at.selectbox if w.key == "trader360.match"]
        assert all(text.strip().lower() in o.lower() for o in (options[0] if options else [])), (text, options)
        assert not at.metric, text
    assert _fingerprint(app_db) == before


def test_the_page_is_in_the_navigation_at_trader():
    app = (ROOT / "app.py").read_text()
    assert re.search(r'PageSpec\("pages/trader.py", title="Trader 360",[^)]*url_path="trader"\)', app)
