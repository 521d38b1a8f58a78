"""Does training from the Predictions page block other users? The Overview's render time in new browser
sessions (Debian's Chromium), each with a filter no one asked before (so the page computes), while the
server is quiet and while another session trains the first-deposit model from the Training tab.

    .venv/bin/python cli.py serve --server.port 8599 --server.headless true &   # the demo database
    .venv/bin/python benchmarks/training_beside_pages.py http://127.0.0.1:8599

Prints the median and every run of both. Training runs in a thread of the server process; the two
cores are shared, so pages slow down while it runs, but none waits for it to finish.
"""
import statistics
import sys
import time

from playwright.sync_api import sync_playwright

base = sys.argv[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

def ready(pg):
    for state in ("data-test-connection-state='CONNECTED'", "data-test-script-state='notRunning'"):
        pg.locator(f"[data-testid='stApp'][{state}]").wait_for(state="attached", timeout=120000)

def overview_times(b, n, params):
    out = []
    for i in range(n):
        pg = b.new_page(viewport={"width": 1440, "height": 1000})
        t = time.perf_counter()
        pg.goto(f"{base}/overview?{params[i % len(params)]}")
        ready(pg)
        pg.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=120000)
        out.append(time.perf_counter() - t)
        pg.close()
    return out

with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
    params = ["country=DE", "country=GB", "country=ES", "country=FR", "country=IT", "country=PL"]
    overview_times(b, 2, params)  # warm
    quiet = overview_times(b, 6, params)
    trainer = b.new_page(viewport={"width": 1440, "height": 1000})
    trainer.goto(f"{base}/predictions?predictions.model=First+deposit&predictions.tab=Training")
    ready(trainer)
    trainer.get_by_role("button", name="Train a new first deposit model").click()
    time.sleep(2)
    busy = overview_times(b, 6, ["country=NL", "country=SE", "country=PT", "country=RO", "country=CY", "country=ZA"])
    trainer.get_by_text("Saved as").first.wait_for(timeout=300000)
    print(f"Overview, quiet: median {statistics.median(quiet):.2f} s {[round(x, 2) for x in quiet]}")
    print(f"Overview, while FTD trains in the background: median {statistics.median(busy):.2f} s "
          f"{[round(x, 2) for x in busy]}")
    b.close()
