"""How fast the analytics pages render in a real browser, cold and warm, and how fast a cached
interaction comes back.

    python benchmarks/pages_bench.py                     # every analytics page, 5 repetitions
    python benchmarks/pages_bench.py --reps 3 --pages cohorts,funnels

Serves the app as ``make run`` does, ``cli.py serve`` (headless, free port, fileWatcherType none) on the demo-size
database ``data/bench/demo.duckdb`` (``cli.py seed --traders 20000 --end 2026-12-01`` when missing;
TRADERLENS_BENCH_DEMO_DB overrides it) and drives Debian's Chromium with Playwright
(/usr/bin/chromium, CHROMIUM_PATH overrides; never a Playwright browser download).

Per repetition and page, on a freshly started server (so every cache is empty):
- returning browser: a browser profile that has loaded the app before (its HTTP cache holds
  Streamlit's and Vega's JavaScript, as a broker's staff browser would) opens the page
  on a server started afresh for it;
- cold: in a brand-new browser context (empty HTTP cache), on another fresh server: navigate to
  the page's URL; the clock stops when the page is fully rendered: the script
  has finished (``stApp[data-test-script-state=notRunning]``, connected), at least one chart has
  drawn (a Vega canvas/svg) and every chart on the page has, no
  ``stSkeleton``, no spinner and no stale element is left;
- warm: reload the page (new websocket session, Streamlit's caches filled) with the same test;
- interaction, uncached: pick another sidebar Period preset (Last 30 days) and wait until the
  script has rerun with the new period's dates shown and the page fully rendered again;
- interaction, cached: pick the first preset again (Last 90 days, the value already computed on
  load), then Last 30 days again: both are answered from ``st.cache_data``; their median is the
  cached figure;
- page switch: to another page through the sidebar navigation and back, timed from the click back
  until the page is fully rendered (same tab and session, as staff move around a running app).

Prints a Markdown table of medians and writes every run to benchmarks/results/pages.json.

Targets (issue 3): a page fully rendered in at most 3 s; a cached interaction in at most 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "pages.json"
from server.warmup import ServerNotReady, wait_until_warm  # noqa: E402 - after the path set-up above

DEMO_DB = Path(os.environ.get("TRADERLENS_BENCH_DEMO_DB", ROOT / "data" / "bench" / "demo.duckdb"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SEED_ARGS = ["--traders", "20000", "--end", "2026-12-01"]
TARGET_RENDER_S = 3.0
TARGET_CACHED_S = 0.5
TIMEOUT_MS = 120_000

# (name, url path, page file). The overview is the default page, served at "/" as well.
PAGES = (
    ("overview", "overview", "pages/overview.py"),
    ("cohorts", "cohorts", "pages/cohorts.py"),
    ("funnels", "funnels", "pages/funnels.py"),
    ("lifecycle", "lifecycle", "pages/lifecycle.py"),
)
DEFAULT_PRESET = "Last 90 days"
OTHER_PRESET = "Last 30 days"

# True when the page is fully rendered: the run has finished, every chart on the page has drawn
# (at least one exists), and no skeleton, spinner or stale element remains. ``expected`` (or
# null) is text the sidebar must show, so an interaction is only done once its rerun is.
RENDERED_JS = """
(expected) => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
  if (app.getAttribute("data-test-connection-state") !== "CONNECTED") return false;
  if (document.querySelector("[data-testid='stSkeleton'], [data-testid='stSpinner'], [data-stale='true']"))
    return false;
  const vega = [...document.querySelectorAll("[data-testid='stVegaLiteChart'], [data-testid='stArrowVegaLiteChart']")];
  if (vega.length === 0) return false;
  if (!vega.every(c => c.querySelector("canvas, svg"))) return false;
  if (expected !== null) {
    const side = document.querySelector("[data-testid='stSidebar']");
    if (!side || !side.innerText.includes(expected)) return false;
  }
  return true;
}
"""


def ensure_demo_database() -> str:
    url = f"duckdb:///{DEMO_DB}"
    if DEMO_DB.exists():
        return url
    DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
    print(f"seeding {DEMO_DB} ({' '.join(SEED_ARGS)}) ...", file=sys.stderr)
    subprocess.run([sys.executable, "cli.py", "seed", *SEED_ARGS], cwd=ROOT, check=True,
                   env={**os.environ, "TRADERLENS_DB_URL": url})
    return url


def expected_captions(url: str) -> dict[str, str]:
    """The sidebar caption ("01 Nov 2026 – 30 Nov 2026 (UTC)") each preset shows on this data."""
    from analytics.events import compute_data_span
    from components.filters import PRESETS
    from connectors import database

    engine = database.get_engine(url)
    database.upgrade_schema(engine)  # the server would do it on start; keep it out of the timings
    span = compute_data_span(engine)
    database.dispose_engines()  # release the DuckDB file for the server
    out = {}
    for preset in (DEFAULT_PRESET, OTHER_PRESET):
        start = max(span.start, span.end - timedelta(days=PRESETS[preset] - 1))
        out[preset] = f"{start:%d %b %Y} – {span.end:%d %b %Y} (UTC)"
    return out


def available_pages(wanted: list[str] | None) -> list[tuple[str, str, str]]:
    app = (ROOT / "app.py").read_text()
    found = []
    for name, path, script in PAGES:
        if wanted and name not in wanted:
            continue
        if (ROOT / script).exists() and script in app:
            found.append((name, _url_path(app, script) or path, script))
        else:
            print(f"{name}: {script} not in app.py's navigation yet; skipped", file=sys.stderr)
    return found


def _url_path(app: str, script: str) -> str | None:
    match = re.search(re.escape(script) + r'"[^)]*?url_path="([^"]*)"', app)
    return match.group(1) if match else None


def _nav_title(script: str) -> str:
    """The page's title in app.py's navigation (what its sidebar link reads)."""
    match = re.search(re.escape(script) + r'"[^)]*?title="([^"]*)"', (ROOT / "app.py").read_text())
    if not match:
        raise SystemExit(f"no title for {script} in app.py's navigation")
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`cli.py serve` (as `make run`) on ``port`` (default: a free one) against ``db_url``, logging to
    a temporary file."""

    def __init__(self, db_url: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = Path(tempfile.mkstemp(prefix="traderlens-pages-bench-", suffix=".log")[1])
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "cli.py", "serve", "--server.headless=true",
                 f"--server.port={self.port}", "--server.address=127.0.0.1",
                 "--server.fileWatcherType=none", "--browser.gatherUsageStats=false"],
                cwd=ROOT, env={**os.environ, "TRADERLENS_DB_URL": db_url}, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        # `cli.py serve` runs each analytics page once after start (server/warmup.py); a visitor
        # who arrives during those seconds shares the server with it, so the clock starts after.
        try:
            self.healthy_s, self.warmed_s = wait_until_warm(self.url, self.proc, self.log, timeout_s=180)
        except ServerNotReady as exc:
            self.stop()
            raise SystemExit(str(exc)) from None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.unlink(missing_ok=True)


def wait_rendered(page, expected: str | None) -> None:
    page.wait_for_function(RENDERED_JS, arg=expected, polling=25, timeout=TIMEOUT_MS)


def choose_period(page, preset: str, caption: str) -> float:
    """Pick ``preset`` in the sidebar Period select; seconds from the click until the rerun is
    done and the page is fully rendered with the new dates in the sidebar."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Period").click()
    option = page.get_by_role("option", name=preset, exact=True)
    option.wait_for(state="visible")
    t0 = time.perf_counter()
    option.click()
    wait_rendered(page, caption)
    return time.perf_counter() - t0


def time_visit(page, url: str, caption: str) -> float:
    """Seconds from ``page.goto(url)`` until the page is fully rendered with ``caption`` shown."""
    t0 = time.perf_counter()
    page.goto(url)
    wait_rendered(page, caption)
    return time.perf_counter() - t0


def measure_returning(profile, base: str, path: str, captions: dict[str, str]) -> float:
    """Seconds until ``path`` is fully rendered in the persistent (returning) browser profile."""
    page = profile.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        return time_visit(page, page_url(base, path), captions[DEFAULT_PRESET])
    finally:
        page.close()


def page_url(base: str, path: str) -> str:
    """The default page (the first in PAGES) lives at "/": Streamlit answers its own url_path with
    "Page not found" and then runs the default page anyway."""
    return f"{base}/" if path == PAGES[0][1] else f"{base}/{path}"


def _go_by_nav(page, path: str, caption: str) -> None:
    """Click ``path``'s sidebar navigation link and wait until that page is fully rendered (the
    default page's link is "/")."""
    script = next(script for _name, p, script in PAGES if p == path)
    title = _nav_title(script)
    page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
    want = "/" if path == PAGES[0][1] else f"/{path}"
    page.wait_for_url(lambda url: urlsplit(url).path.rstrip("/") == want.rstrip("/"))
    # The page's own title (each page's st.title is its navigation title): until the new run has
    # replaced it, the previous page would pass for rendered.
    page.get_by_role("heading", name=title, exact=True).wait_for()
    wait_rendered(page, caption)


def switch_back(page, path: str, caption: str) -> float:
    """Go to another page through the sidebar navigation, then back to ``path`` the same way (the
    way staff move around a running app: same tab, same session, its JavaScript loaded); seconds
    from the click back until ``path`` is fully rendered again."""
    _go_by_nav(page, next(p for _name, p, _script in PAGES if p != path), caption)
    t0 = time.perf_counter()
    _go_by_nav(page, path, caption)
    return time.perf_counter() - t0


def measure_page(browser, base: str, path: str, captions: dict[str, str]) -> dict:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        cold = time_visit(page, page_url(base, path), captions[DEFAULT_PRESET])
        t0 = time.perf_counter()
        page.reload()
        wait_rendered(page, captions[DEFAULT_PRESET])
        warm = time.perf_counter() - t0
        uncached = choose_period(page, OTHER_PRESET, captions[OTHER_PRESET])
        cached_back = choose_period(page, DEFAULT_PRESET, captions[DEFAULT_PRESET])
        cached_again = choose_period(page, OTHER_PRESET, captions[OTHER_PRESET])
        charts = page.locator("[data-testid='stVegaLiteChart']").count()
        switch = switch_back(page, path, captions[OTHER_PRESET])
    finally:
        context.close()
    return {"cold_s": round(cold, 3), "warm_s": round(warm, 3), "uncached_interaction_s": round(uncached, 3),
            "cached_interaction_s": [round(cached_back, 3), round(cached_again, 3)], "charts": charts,
            "switch_s": round(switch, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--pages", help="comma-separated subset: overview,cohorts,funnels,lifecycle")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: apt-get install chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    db_url = ensure_demo_database()
    captions = expected_captions(db_url)
    pages = available_pages(args.pages.split(",") if args.pages else None)
    if not pages:
        raise SystemExit("no analytics page is in app.py's navigation yet")
    runs: list[dict] = []
    started = time.strftime("%Y-%m-%d %H:%M")
    # One port for every server: the returning profile's HTTP cache is per origin.
    port = free_port()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="traderlens-profile-") as profile_dir:
        launch_args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=launch_args)
        profile = playwright.chromium.launch_persistent_context(
            profile_dir, executable_path=CHROMIUM, args=launch_args, viewport={"width": 1440, "height": 1000})
        try:
            server = Server(db_url, port)
            try:  # the profile's first visit of every page fills its HTTP cache
                for _name, path, _script in pages:
                    measure_returning(profile, server.url, path, captions)
            finally:
                server.stop()
            for rep in range(1, args.reps + 1):
                for name, path, _script in pages:
                    run = {"page": name, "path": f"/{path}", "rep": rep, "load_average": round(os.getloadavg()[0], 2)}
                    server = Server(db_url, port)  # a fresh process: cold caches, then the warm-up
                    run["server_healthy_s"] = round(server.healthy_s, 2)
                    run["server_warmed_s"] = round(server.warmed_s, 2)
                    try:
                        run["returning_s"] = round(measure_returning(profile, server.url, path, captions), 3)
                    except Exception as exc:
                        run["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                    finally:
                        server.stop()
                    server = Server(db_url, port)  # and again for the brand-new browser context
                    try:
                        if "error" not in run:
                            run |= measure_page(browser, server.url, path, captions)
                    except Exception as exc:  # a page that never finished rendering: keep going
                        run["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                        print(f"{name:10} rep {rep}: {run['error']}", file=sys.stderr)
                    finally:
                        server.stop()
                    runs.append(run)
                    summarise(pages, runs, args.output, started)
                    if "error" in run:
                        continue
                    print(f"{name:10} rep {rep}: returning browser {run['returning_s']:.2f}s, "
                          f"cold {run['cold_s']:.2f}s, warm {run['warm_s']:.2f}s, switch {run['switch_s']:.2f}s, "
                          f"uncached change {run['uncached_interaction_s']:.2f}s, cached change "
                          f"{', '.join(f'{s:.2f}' for s in run['cached_interaction_s'])}s, {run['charts']} charts",
                          file=sys.stderr)
        finally:
            profile.close()
            browser.close()
    summary = summarise(pages, runs, args.output, started)
    print("| page | reps | page switch in the app (s) | reload, warm caches (s) | first visit after a server start, "
          "returning browser (s) | first visit, new browser (s) | period change, uncached (s) | period change, "
          "cached (s) | render ≤ 3 s: running app / returning / new browser | cached ≤ 0.5 s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")

    def yes(flag: bool) -> str:
        return "yes" if flag else "**no**"

    for s in summary:
        print(f"| {s['path']} | {s['reps']} | {s['switch_s']:.2f} | {s['warm_s']:.2f} | {s['returning_s']:.2f} | "
              f"{s['cold_s']:.2f} | {s['uncached_interaction_s']:.2f} | {s['cached_interaction_s']:.2f} | "
              f"{yes(s['running_app_target_met'])} / {yes(s['returning_target_met'])} / "
              f"{yes(s['render_target_met'])} | {yes(s['cached_target_met'])} |")
    return 0


def summarise(pages, runs: list[dict], output: Path, started: str) -> list[dict]:
    """Medians per page, written with every run to ``output`` (after each run, so an interrupted
    benchmark keeps what it measured)."""
    summary = []
    for name, path, _script in pages:
        sel = [r for r in runs if r["page"] == name and "error" not in r]
        if not sel:
            continue
        med = {k: statistics.median(r[k] for r in sel)
               for k in ("returning_s", "cold_s", "warm_s", "switch_s", "uncached_interaction_s")}
        med["cached_interaction_s"] = statistics.median(s for r in sel for s in r["cached_interaction_s"])
        summary.append({"page": name, "path": f"/{path}", "reps": len(sel), **{k: round(v, 3) for k, v in med.items()},
                        "returning_target_met": max(med["returning_s"], med["warm_s"]) <= TARGET_RENDER_S,
                        "running_app_target_met": max(med["warm_s"], med["switch_s"]) <= TARGET_RENDER_S,
                        "render_target_met": max(med["cold_s"], med["warm_s"]) <= TARGET_RENDER_S,
                        "cached_target_met": med["cached_interaction_s"] <= TARGET_CACHED_S})
    output.parent.mkdir(parents=True, exist_ok=True)
    import streamlit

    output.write_text(json.dumps({
        "measured_at": started, "cores": os.cpu_count(), "machine": platform.machine(),
        "versions": {"python": platform.python_version(), "streamlit": streamlit.__version__,
                     "chromium": browser_version()},
        "database": str(DEMO_DB.relative_to(ROOT)) if DEMO_DB.is_relative_to(ROOT) else str(DEMO_DB),
        "targets": {"render_s": TARGET_RENDER_S, "cached_interaction_s": TARGET_CACHED_S},
        "summary": summary, "runs": runs,
    }, indent=1))
    return summary


def browser_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
