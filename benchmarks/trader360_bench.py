"""How fast the Trader 360 page renders in a real browser for a trader with 10,000 deals.

    python benchmarks/trader360_bench.py                    # DuckDB, 7 runs
    python benchmarks/trader360_bench.py --runs 5 --backend postgres
    python benchmarks/trader360_bench.py --trades 10000 --traders 2000 --keep /tmp/t360.duckdb

Builds a small database: a simulated broker (``--traders``, a year, seed 7, ending 2026-12-01), then
one of its traders gets ``--trades`` more closed positions over the year through SQL (INSERT of
generated rows), the rollups are refreshed and the feature snapshot materialised, as `cli.py`
would leave them. Serves the app as ``make run`` does (``cli.py serve``) and drives Debian's
Chromium with Playwright (/usr/bin/chromium; CHROMIUM_PATH overrides; never a Playwright download).

Each run opens ``/trader?trader=<external id>`` in a new browser context on a server started
afresh (its caches empty; the warm-up has run) and stops the clock when the page is fully
rendered: the script has finished, no spinner, skeleton or stale element is left, the timeline's
Plotly chart has drawn its WebGL canvas and the last section (segments and clusters) is on screen.
A second visit of the same link in the same server (Streamlit's caches filled) is timed the same
way. Prints the medians and writes every run to benchmarks/results/trader360.json.

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


def measure(browser, base: str, external_id: str) -> dict:
    """Seconds until the Trader 360 of ``external_id`` is fully rendered: first visit after the server
    started (new browser context), then the same link again (Streamlit's caches filled)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    url = f"{base}/trader?trader={external_id}"
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(RENDERED_JS, polling=25, timeout=TIMEOUT_MS)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(RENDERED_JS, polling=25, timeout=TIMEOUT_MS)
        again = time.perf_counter() - t0
    finally:
        context.close()
    return {"first_visit_s": round(first, 3), "cached_visit_s": round(again, 3)}


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
                    server = Server(url)
                    try:
                        result = {"run": run, "load_average": round(os.getloadavg()[0], 2),
                                  **measure(browser, server.url, external_id)}
                    finally:
                        server.stop()
                    runs.append(result)
                    print(f"run {run}: first visit {result['first_visit_s']:.2f} s, again "
                          f"{result['cached_visit_s']:.2f} s (load {result['load_average']})", file=sys.stderr)
            finally:
                browser.close()
    first = statistics.median(r["first_visit_s"] for r in runs)
    again = statistics.median(r["cached_visit_s"] for r in runs)
    summary = {"backend": args.backend, "traders": args.traders, "trades": args.trades, "runs": len(runs),
               "median_first_visit_s": round(first, 3), "median_cached_visit_s": round(again, 3),
               "target_s": TARGET_S, "target_met": first < TARGET_S}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured_at": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "machine": platform.machine(),
        "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip(),
        "summary": summary, "runs": runs}, indent=1))
    print(f"| backend | trader's deals | runs | first visit, median (s) | again, median (s) | < {TARGET_S:.0f} s |")
    print("|---|---:|---:|---:|---:|---|")
    print(f"| {args.backend} | {args.trades:,} | {len(runs)} | {first:.2f} | {again:.2f} | "
          f"{'yes' if summary['target_met'] else '**no**'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
