"""The server's share of a cached interaction: a page script rerun with every analytics call
answered from ``st.cache_data``, timed under Streamlit's AppTest (no browser).

    python benchmarks/rerun_bench.py                 # the four analytics pages, 3 reruns each
    python benchmarks/rerun_bench.py --reruns 5 --pages overview,funnels

Runs app.py on the demo-size database ``data/bench/demo.duckdb`` (created by
benchmarks/pages_bench.py; TRADERLENS_BENCH_DEMO_DB overrides it), switches to each page, runs it
once (filling the caches) and then reruns it; prints the first run and every rerun in seconds.
Compare with the browser's cached period change in benchmarks/pages_bench.py: the difference is
the browser's part (round trip, replacing elements, redrawing charts).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_DB = Path(os.environ.get("TRADERLENS_BENCH_DEMO_DB", ROOT / "data" / "bench" / "demo.duckdb"))
PAGES = ("overview", "cohorts", "funnels", "lifecycle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--pages", default=",".join(PAGES))
    args = parser.parse_args()
    if not DEMO_DB.exists():
        print(f"{DEMO_DB} is missing: run benchmarks/pages_bench.py once to create it", file=sys.stderr)
        return 2
    os.environ["TRADERLENS_DB_URL"] = f"duckdb:///{DEMO_DB}"
    from streamlit.testing.v1 import AppTest

    print("| page | first run s | cached reruns s |\n|---|---:|---|")
    for page in args.pages.split(","):
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        app.switch_page(f"pages/{page}.py")
        started = time.perf_counter()
        app.run()
        first = time.perf_counter() - started
        if app.exception:
            print(f"{page}: the page raised {app.exception[0].message}", file=sys.stderr)
            return 1
        reruns = []
        for _ in range(args.reruns):
            started = time.perf_counter()
            app.run()
            reruns.append(time.perf_counter() - started)
        print(f"| {page} | {first:.2f} | {', '.join(f'{r:.3f}' for r in reruns)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
