"""How fast the Trader 360 page renders in a real browser for a trader with 10,000 deals.

    python benchmarks/trader360_bench.py                    # DuckDB, 7 runs
    python benchmarks/trader360_bench.py --runs 5 --backend postgres
    python benchmarks/trader360_bench.py --trades 10000 --traders 2000 --keep /tmp/t360.duckdb

Builds a small database: a simulated broker (``--traders``, a year, seed 7, ending 2026-12-01), then
one of its traders gets ``--trades`` more closed positions over the year through SQL (INSERT of
generated rows), the rollups are refreshed and the feature snapshot materialised, as `cli.py`
would leave them. Serves the app as ``make run`` does (``cli.py serve``) and drives Debian's
Chromium with Playwright (/usr/bin/chromium; CHROMIUM_PATH overrides; never a Playwright download).

Each run starts the server afresh twice (so nothing of the trader is cached) and times, until the page
is fully rendered (the script has finished, no spinner, skeleton or stale element is left, the
timeline has drawn and the last section, segments and clusters, is on screen):
- in the app: the page open without a trader, the trader's id typed into the search and Enter (a
  whole id opens its trader at once): every figure of the trader computed afresh;
- from a link, ``/trader?trader=<external id>``, in a new browser context (its HTTP cache empty) on
  the other fresh server; then the same tab reloaded four times (the trader's figures cached: the
  first reload, and the median of the other three, the tab as a user keeps it open);
- for reference, the Lifecycle page opened the same way in the same window.
Prints the medians and writes every run to benchmarks/results/trader360.json.

Target (issue 12): fully rendered in under 2 s for a trader with 10,000 deals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.pages_bench import CHROMIUM, Server  # noqa: E402 - after the path set-up above
from benchmarks.pages_bench import RENDERED_JS as LIFECYCLE_RENDERED_JS  # noqa: E402
from benchmarks.simulator_bench import fresh_database  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "trader360.json"
END = date(2026, 12, 1)
TARGET_S = 2.0
TIMEOUT_MS = 120_000
SYMBOLS = (("EURUSD", "fx", 1.08, 100_000), ("XAUUSD", "commodities", 2350.0, 100), ("US500", "indices", 5400.0, 1),
           ("BTCUSD", "crypto", 64_000.0, 1), ("GBPUSD", "fx", 1.27, 100_000))

# Fully rendered: the run has finished and is connected, nothing is pending or stale, the Plotly
# timeline has drawn (its WebGL canvas), and the page's last section is there.
RENDERED_JS = """
() => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
  if (app.getAttribute("data-test-connection-state") !== "CONNECTED") return false;
  if (document.querySelector("[data-testid='stSkeleton'], [data-testid='stSpinner'], [data-stale='true']"))
    return false;
  const charts = [...document.querySelectorAll("[data-testid='stVegaLiteChart']")];
  if (charts.length === 0 || !charts.every(c => c.querySelector("canvas, svg"))) return false;
  return !!document.querySelector(".st-key-trader360-memberships");
}
"""


def add_trades(engine, trader_id: int, n: int, *, start: date, end: date, seed: int = 12) -> int:
    """Add ``n`` closed positions for ``trader_id`` between ``start`` and ``end`` (on their first
    account), as generated rows inserted with SQL; then refresh the trader's rollups. Returns the
    trader's trade count."""
    import sqlalchemy as sa

    from connectors.rollups import refresh_rollups
    from connectors.schema import accounts, trades

    rng = random.Random(seed)
    span = (datetime.combine(end, datetime.min.time()) - datetime.combine(start, datetime.min.time())).total_seconds()
    with engine.begin() as conn:
        account = conn.execute(sa.select(accounts.c.account_id).where(accounts.c.trader_id == trader_id)
                               .order_by(accounts.c.opened_at).limit(1)).scalar()
        base = conn.execute(sa.select(sa.func.coalesce(sa.func.max(trades.c.trade_id), 0))).scalar_one()
        rows = []
        for i in range(n):
            symbol, asset, price, contract = SYMBOLS[i % len(SYMBOLS)]
            opened = datetime.combine(start, datetime.min.time()) + timedelta(seconds=span * (i + rng.random()) / n)
            held = timedelta(seconds=int(rng.lognormvariate(6.5, 1.5)))
            lots = round(rng.uniform(0.01, 2.0), 2)
            move = rng.gauss(-0.0002, 0.002)
            profit = round(lots * contract * price * move, 2)
            rows.append({
                "trade_id": base + 1 + i, "external_id": f"T360-BENCH-{base + 1 + i}", "account_id": account,
                "trader_id": trader_id, "symbol": symbol, "asset_class": asset, "side": "buy" if i % 2 else "sell",
                "lots": lots, "notional_usd": round(lots * contract * price, 2), "opened_at": opened,
                "closed_at": min(opened + held, datetime.combine(end, datetime.min.time()) - timedelta(seconds=1)),
                "open_price": price, "close_price": round(price * (1 + move), 5), "profit_usd": profit,
                "commission_usd": round(-3.5 * lots, 2), "swap_usd": 0.0, "leverage_used": 10.0,
                "close_reason": rng.choice(("client", "sl", "tp")), "channel": "desktop"})
        for chunk in range(0, n, 1_000):  # 19 parameters a row: within PostgreSQL's 65,535 a statement
            conn.execute(trades.insert().values(rows[chunk:chunk + 1_000]))
        refresh_rollups(conn, [trader_id])
        return conn.execute(sa.select(sa.func.count()).where(trades.c.trader_id == trader_id)).scalar_one()


def build_database(url: str, *, traders: int, trades: int) -> str:
    """Seed ``url`` with a simulated broker and give its busiest trader ``trades`` more positions;
    materialise the feature snapshot when the app has one. Returns that trader's external id."""
    import sqlalchemy as sa

    from connectors import database
    from connectors.schema import traders as traders_table
    from connectors.schema import trades as trades_table
    from connectors.simulator import SimulationConfig, seed_database

    engine = database.get_engine(url)
    database.upgrade_schema(engine)
    seed_database(engine, SimulationConfig(traders=traders, days=365, seed=7, end=END))
    with engine.connect() as conn:
        busiest = conn.execute(sa.select(trades_table.c.trader_id).group_by(trades_table.c.trader_id)
                               .order_by(sa.func.count().desc(), trades_table.c.trader_id).limit(1)).scalar_one()
        external_id = conn.execute(sa.select(traders_table.c.external_id)
                                   .where(traders_table.c.trader_id == busiest)).scalar_one()
        existing = conn.execute(sa.select(sa.func.count()).where(trades_table.c.trader_id == busiest)).scalar_one()
    total = add_trades(engine, busiest, max(trades - existing, 0), start=END - timedelta(days=365), end=END)
    print(f"trader {external_id}: {total:,} trades", file=sys.stderr)
    try:
        from analytics.features import materialise_features
    except ImportError:
        print("no analytics.features yet: the feature snapshot is not materialised", file=sys.stderr)
    else:
        materialise_features(engine)
    engine.dispose()
    database.dispose_engines()  # the server opens the file itself
    return external_id


def _rendered(page) -> None:
    page.wait_for_function(RENDERED_JS, polling=25, timeout=TIMEOUT_MS)


def measure_link(browser, base: str, external_id: str) -> dict:
    """On a server just started: the link opened in a new browser context (every cache empty: the
    browser's and Streamlit's), then reloaded four times (the trader's figures cached; the first
    reload, and the median of the other three: the tab as a user keeps it open), then the Lifecycle page
    in another new context (its default view warmed by the server's warm-up) as this window's
    reference."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        t0 = time.perf_counter()
        page.goto(f"{base}/trader?trader={external_id}")
        _rendered(page)
        first = time.perf_counter() - t0
        reloads = []
        for _ in range(4):  # the first reload, then the tab as a user has it open (its code cache warm)
            t0 = time.perf_counter()
            page.reload()
            _rendered(page)
            reloads.append(time.perf_counter() - t0)
    finally:
        context.close()
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        t0 = time.perf_counter()
        page.goto(f"{base}/lifecycle")
        page.wait_for_function(LIFECYCLE_RENDERED_JS, arg=None, polling=25, timeout=TIMEOUT_MS)
        lifecycle = time.perf_counter() - t0
    finally:
        context.close()
    return {"first_visit_s": round(first, 3), "reload_s": round(reloads[0], 3),
            "open_tab_reload_s": round(statistics.median(reloads[1:]), 3),
            "lifecycle_first_visit_s": round(lifecycle, 3)}


def measure_in_app(browser, base: str, external_id: str) -> dict:
    """On a server just started: the page open in the browser without a trader, then the trader's id
    typed into the search (a whole id opens its trader at once): seconds from Enter until fully rendered,
    every figure computed afresh."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base}/trader")
        search = page.get_by_role("textbox", name="Find a trader")
        search.wait_for()
        page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(state="attached")
        search.fill(external_id)
        t0 = time.perf_counter()
        search.press("Enter")
        _rendered(page)
        return {"in_app_open_s": round(time.perf_counter() - t0, 3)}
    finally:
        context.close()


SCENARIOS = {
    "in_app_open_s": "opened in the running app (search, whole id, Enter), figures computed afresh",
    "reload_s": "link reloaded in the same tab (figures cached)",
    "open_tab_reload_s": "reloaded again in the tab as a user keeps it open (median of 3)",
    "first_visit_s": "link opened in a new browser just after a server start (every cache empty)",
    "lifecycle_first_visit_s": "reference: the Lifecycle page the same way (its default view warmed at start)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--traders", type=int, default=2_000)
    parser.add_argument("--trades", type=int, default=10_000, help="deals of the measured trader")
    parser.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--keep", type=Path, help="DuckDB file to build once and reuse")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: apt-get install chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="traderlens-t360-") as tmp:
        if args.keep is not None and args.backend == "duckdb":
            url = f"duckdb:///{args.keep.resolve()}"
            marker = args.keep.with_suffix(".trader")
            if not (args.keep.exists() and marker.exists()):
                args.keep.unlink(missing_ok=True)
                marker.write_text(build_database(url, traders=args.traders, trades=args.trades))
            external_id = marker.read_text()
        else:
            url = fresh_database(args.backend, Path(tmp), "traderlens_bench_trader360")
            external_id = build_database(url, traders=args.traders, trades=args.trades)
        runs = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                for run in range(1, args.runs + 1):
                    result = {"run": run, "load_average": round(os.getloadavg()[0], 2)}
                    for measure in (measure_in_app, measure_link):
                        server = Server(url)  # a fresh process each time: nothing of this trader cached
                        try:
                            result |= measure(browser, server.url, external_id)
                        finally:
                            server.stop()
                    runs.append(result)
                    print(f"run {run} (load {result['load_average']}): " + ", ".join(
                        f"{name} {result[name]:.2f}" for name in SCENARIOS), file=sys.stderr)
            finally:
                browser.close()
    medians = {name: round(statistics.median(r[name] for r in runs), 3) for name in SCENARIOS}
    summary = {"backend": args.backend, "traders": args.traders, "trades": args.trades, "runs": len(runs),
               "medians_s": medians, "target_s": TARGET_S,
               "target_met_in_app": medians["in_app_open_s"] < TARGET_S and medians["open_tab_reload_s"] < TARGET_S,
               "target_met_first_visit": medians["first_visit_s"] < TARGET_S}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured_at": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "machine": platform.machine(),
        "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip(),
        "scenarios": SCENARIOS, "summary": summary, "runs": runs}, indent=1))
    print(f"{args.backend}, a trader with {args.trades:,} deals, {len(runs)} runs, load "
          f"{min(r['load_average'] for r in runs)}-{max(r['load_average'] for r in runs)}:")
    print("| how the page was opened | median (s) | < 2 s |")
    print("|---|---:|---|")
    for name, what in SCENARIOS.items():
        print(f"| {what} | {medians[name]:.2f} | {'yes' if medians[name] < TARGET_S else '**no**'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
