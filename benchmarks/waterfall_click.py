"""One trader's waterfall on screen: on the Predictions page, the time from clicking a trader's row in
the table of scores until that trader's waterfall has drawn under it (Debian's Chromium). The page is
open already (a retention manager going down the list); each click is a new trader, so nothing of
that trader is cached.

    .venv/bin/python cli.py serve --server.port 8599 --server.headless true &   # any scored database
    .venv/bin/python benchmarks/waterfall_click.py http://127.0.0.1:8599 [--model churn] [--clicks 8]

Prints each click's time and the median; the issue's target is under 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROW_PX = 35  # the table's row height (components/predictions_views.py), and its header's


def ready(page) -> None:
    for state in ("data-test-connection-state='CONNECTED'", "data-test-script-state='notRunning'"):
        page.locator(f"[data-testid='stApp'][{state}]").wait_for(state="attached", timeout=120_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--model", default="Churn", help="the model's name on the page's picker")
    parser.add_argument("--clicks", type=int, default=8)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        page.goto(f"{args.url}/predictions?predictions.model={args.model}")
        ready(page)
        grid = page.locator(".st-key-predictions-scores-table [data-testid='stDataFrame']")
        grid.wait_for(timeout=120_000)
        why = page.locator(".st-key-predictions-scores-why [data-testid='stVegaLiteChart'] svg.marks")
        times = []
        for i in range(args.clicks):
            box = grid.bounding_box()
            if i:  # clear the previous selection: the next row becomes the only (first) one
                page.mouse.click(box["x"] + 15, box["y"] + ROW_PX * (i + 0.5))
                ready(page)
                why.wait_for(state="detached", timeout=30_000)
            started = time.perf_counter()
            page.mouse.click(box["x"] + 15, box["y"] + ROW_PX * (i + 1.5))
            why.wait_for(timeout=30_000)
            times.append(time.perf_counter() - started)
            ready(page)
        browser.close()
    print("click to waterfall drawn (s): " + ", ".join(f"{t:.3f}" for t in times))
    print(f"median {statistics.median(times):.3f} s over {len(times)} traders; the first {times[0]:.3f} s")


if __name__ == "__main__":
    main()
