"""How long behavioural clustering takes on 200,000 traders, and whether it finds the simulator's personas.

    python benchmarks/segmentation_bench.py                          # k-means, GMM, HDBSCAN; 3 runs; DuckDB assign
    python benchmarks/segmentation_bench.py --algorithms kmeans --runs 5 --db-assign duckdb,postgres

Data: the 200,000-trader benchmark database of benchmarks/analytics_bench.py (``data/bench/analytics.duckdb``;
TRADERLENS_BENCH_DUCKDB overrides it), opened read-only. The feature snapshot is read once (its own
target is benchmarks/features_bench.py's; its time is printed for reference). Then, per algorithm:

- **clustering with diagnostics**: ``fit_clustering`` (default spec, k = 6) and ``compute_diagnostics``
  across k = 2..10 (silhouette, Calinski-Harabasz, Davies-Bouldin, BIC for the mixture, stability from
  bootstrap refits) — what the studio computes for one setting; target 30 s;
- the adjusted Rand index of the clusters against the simulator's hidden personas (the truth table,
  read by this benchmark only) and the bootstrap stability at k = 6;
- **assigning new traders** without a refit: the stored model read back from its JSON and applied to
  the 10,000 newest traders of the population, and to the whole population; target 1 s.

With ``--db-assign`` the saved-run path is timed too, on a scratch copy of the database (the DuckDB file
copied, the PostgreSQL database ``traderlens_analytics_bench`` cloned, both removed at the end): the
feature snapshot materialised, the k-means run saved, the 10,000 newest traders' assignments deleted,
then ``assign_new_traders`` (read those traders from trader_features, assign, insert) in a transaction
rolled back after each run.

Every timing is the median of ``--runs`` runs after one untimed warm-up. Prints a Markdown table and
appends the run to benchmarks/results/segmentation.json.

``--studio`` times the clustering studio instead, in a real browser (Debian's Chromium through
Playwright, as benchmarks/pages_bench.py) on a scratch copy of the demo-size database
``data/bench/demo.duckdb`` (20,000 traders; seeded by pages_bench.py's command when missing): per
repetition a fresh server (``cli.py serve``, empty caches), then the Segments page's Clusters tab opened
and each interaction timed from the click until the run is over and everything is drawn again (no
spinner, skeleton or stale element; the heat map and the map drawn; the caption naming the new
setting): k 6 → 5, back to 6 (cached), the mixture, HDBSCAN, back to k-means (cached), log1p off,
robust scaling, PCA 5, the diagnostics across k and the KYC comparison (both on demand), saving the
clustering and saving a cluster as a segment. Target: every interaction under 2 s.

    python benchmarks/segmentation_bench.py --studio --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from analytics import reading as reading_module  # noqa: E402
from analytics import segmentation as seg  # noqa: E402
from analytics.features import compute_features, materialise_features  # noqa: E402
from benchmarks.analytics_bench import DUCKDB_PATH, SCRATCH, remove_duckdb, scratch_copy  # noqa: E402
from connectors import database, schema  # noqa: E402
from connectors.schema import TRUTH_SCHEMA  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "segmentation.json"
NEW_TRADERS = 10_000
TARGETS = {"fit + diagnostics": 30.0, "assign": 1.0}


def long_reads() -> None:
    """Give batch reads (the whole snapshot) 10 minutes instead of the pages' 30 s: preparation here,
    not what is measured; a busy machine must not stop the run."""
    reading_module.reading.__wrapped__.__kwdefaults__["timeout_s"] = 600


def timed(fn, runs: int) -> tuple[float, list[float], object]:
    fn()  # warm-up, not counted
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, out


def personas(engine: sa.Engine) -> pd.Series:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT trader_id, persona FROM {TRUTH_SCHEMA}.traders")).all()
    return pd.Series({int(r[0]): r[1] for r in rows})


def bench_algorithm(snapshot, truth: pd.Series, algorithm: str, runs: int) -> tuple[list[dict], seg.Clustering]:
    spec = seg.ClusterSpec(algorithm=algorithm)
    rows = []

    def both() -> tuple[seg.Clustering, seg.Diagnostics]:
        return seg.fit_clustering(snapshot, spec), seg.compute_diagnostics(snapshot, spec)

    median, times, (clustering, diagnostics) = timed(both, runs)
    fit_median, fit_times, _ = timed(lambda: seg.fit_clustering(snapshot, spec), runs)
    clustered = clustering.labels[clustering.labels != seg.NOISE]
    ari = adjusted_rand_score(truth.loc[clustered.index], clustered)
    at_k = diagnostics.frame.set_index("k")["stability"]
    stability = float(at_k.loc[6]) if algorithm != "hdbscan" and 6 in at_k.index else float(at_k.max())
    common = {"algorithm": algorithm, "traders": len(clustering.labels), "clusters": int(
        (clustering.clusters["cluster"] != seg.NOISE).sum()), "noise_share": round(clustering.noise_share, 4),
        "ari_vs_personas": round(ari, 3), "stability": round(stability, 3),
        "diagnostic_rows": diagnostics.sample_rows, "silhouette_rows": diagnostics.silhouette_rows,
        "fitted_rows": clustering.fitted_rows}
    rows.append({**common, "what": "fit + diagnostics", "median_s": median, "runs": times})
    rows.append({**common, "what": "fit", "median_s": fit_median, "runs": fit_times})
    print(f"{algorithm}: fit + diagnostics {median:.2f} s (fit {fit_median:.2f} s) on {len(clustering.labels):,} "
          f"traders; ARI vs personas {ari:.3f}, stability {stability:.3f}", flush=True)
    print(diagnostics.frame.round(3).to_string(index=False), flush=True)

    text = json.dumps(clustering.model.to_json())
    population = snapshot.frame.loc[clustering.labels.index]
    newest = population.tail(NEW_TRADERS)
    for what, frame in ((f"assign {len(newest):,} new traders (model from JSON)", newest),
                        (f"assign all {len(population):,} traders (model from JSON)", population)):
        median, times, labels = timed(lambda f=frame: seg.ClusterModel.from_json(json.loads(text)).assign(f), runs)
        agree = float((labels == clustering.labels.loc[frame.index]).mean())
        rows.append({**common, "what": what, "median_s": median, "runs": times, "agrees_with_fit": round(agree, 4)})
        print(f"  {what}: {median:.3f} s (agrees with the fit on {agree:.2%})", flush=True)
    return rows, clustering


def bench_db_assign(backend: str, clustering: seg.Clustering, runs: int) -> dict:
    """assign_new_traders on a scratch copy: the run saved, its newest traders' rows deleted, timed in a
    transaction rolled back after each run."""
    url, remove = scratch_copy(backend, "segmentation_bench")
    try:
        engine = database.get_engine(url)
        database.upgrade_schema(engine)
        with engine.begin() as conn:
            conn.execute(schema.cluster_assignments.delete())
            conn.execute(schema.clustering_runs.delete())
        materialise_features(engine)
        run_id = seg.save_clustering(engine, clustering, name="bench")
        newest = [int(t) for t in clustering.labels.index[-NEW_TRADERS:]]
        with engine.begin() as conn:
            a = schema.cluster_assignments.c
            conn.execute(schema.cluster_assignments.delete().where(a.run_id == run_id, a.trader_id.in_(newest)))
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("ANALYZE"))

        def assign() -> int:
            conn = engine.connect()
            transaction = conn.begin()
            try:
                return seg.assign_new_traders(conn, run_id)
            finally:
                transaction.rollback()
                conn.close()

        median, times, added = timed(assign, runs)
    finally:
        database.dispose_engines()
        remove()
    print(f"{backend}: assign_new_traders {added:,} traders in {median:.3f} s", flush=True)
    return {"algorithm": clustering.spec.algorithm, "backend": backend, "traders": added,
            "what": f"assign_new_traders: {added:,} new traders ({backend}, read + assign + insert)",
            "median_s": median, "runs": times}


# --- the studio in a browser ---------------------------------------------------------------------------------

STUDIO_TARGET_S = 2.0
STUDIO = ".st-key-segments-studio-"
# The studio is drawn: the run is over, nothing pending, its charts (heat map, map) drawn, and
# ``expected`` (text of the new run) on the page.
STUDIO_RENDERED_JS = """
(expected) => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
  if (app.getAttribute("data-test-connection-state") !== "CONNECTED") return false;
  if (document.querySelector("[data-testid='stSkeleton'], [data-testid='stSpinner'], [data-stale='true']"))
    return false;
  const vega = [...document.querySelectorAll("[data-testid='stVegaLiteChart']")];
  if (vega.length === 0 || !vega.every(c => c.querySelector("canvas, svg"))) return false;
  return expected === null || document.body.innerText.includes(expected);
}
"""


def studio_steps(seg_module) -> list[tuple[str, object, str]]:
    """(interaction, what to do on the page, text the page shows when it is done)."""
    spec = seg_module.ClusterSpec

    def number(key: str, value: int):
        def act(page) -> None:
            box = page.locator(f"{STUDIO}{key} input")
            box.fill(str(value))
            box.press("Enter")
        return act

    def segment(key: str, label: str):
        return lambda page: page.locator(f"{STUDIO}{key}").get_by_role("radio", name=label, exact=True).click()

    def click(key: str, label: str):
        return lambda page: page.locator(f"{STUDIO}{key}").get_by_role("button", name=label).click()

    def toggle(key: str):
        return lambda page: page.locator(f"{STUDIO}{key} label").click()

    return [
        ("k 6 -> 5", number("k", 5), spec(k=5).describe()),
        ("k 5 -> 6 (cached)", number("k", 6), spec(k=6).describe()),
        ("algorithm: Gaussian mixture", segment("algorithm", "Gaussian mixture"), spec(algorithm="gmm").describe()),
        ("algorithm: HDBSCAN", segment("algorithm", "HDBSCAN (density)"), spec(algorithm="hdbscan").describe()),
        ("algorithm: k-means (cached)", segment("algorithm", "k-means"), spec().describe()),
        ("log1p off", toggle("log1p"), spec(log1p=False).describe()),
        ("robust scaling", segment("scaling", "Robust (median, IQR)"),
         spec(log1p=False, scaling="robust").describe()),
        ("PCA 5", number("pca", 5), spec(log1p=False, scaling="robust", pca_components=5).describe()),
        ("diagnostics across k (on demand)", click("diagnostics-run", "Compute the diagnostics across k"),
         "Silhouette on a sample of"),
        ("KYC vs behaviour (on demand)", click("kyc-run", "Compare KYC with behaviour"),
         "by always guessing the largest cluster"),
        ("save the clustering", click("save", "Save clustering"), "Saved clustering run #"),
        ("save a cluster as a segment", click("save_segment", "Save cluster as segment"), "Saved “"),
    ]


def bench_studio(reps: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from benchmarks import pages_bench

    pages_bench.ensure_demo_database()
    rows: list[dict] = []
    steps = studio_steps(seg)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=pages_bench.CHROMIUM,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for rep in range(1, reps + 1):
                path = SCRATCH / f"segmentation_studio_{uuid.uuid4().hex[:8]}.duckdb"
                shutil.copyfile(pages_bench.DEMO_DB, path)  # the studio saves runs and segments: a copy
                server = pages_bench.Server(f"duckdb:///{path}")
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                page = context.new_page()
                page.set_default_timeout(pages_bench.TIMEOUT_MS)
                try:
                    started = time.perf_counter()
                    page.goto(f"{server.url}/segments?segments.tab=Clusters")
                    page.wait_for_function(STUDIO_RENDERED_JS, arg=seg.ClusterSpec().describe(), polling=25,
                                           timeout=pages_bench.TIMEOUT_MS)
                    rows.append({"rep": rep, "what": "open the Clusters tab (new server, empty caches)",
                                 "seconds": time.perf_counter() - started, "load": os.getloadavg()[0]})
                    for what, act, expected in steps:
                        started = time.perf_counter()
                        act(page)
                        # The click's rerun first marks the page stale or running; wait for that,
                        # then for the finished, fully drawn run showing the new setting.
                        page.wait_for_timeout(30)
                        page.wait_for_function(STUDIO_RENDERED_JS, arg=expected, polling=25,
                                               timeout=pages_bench.TIMEOUT_MS)
                        seconds = time.perf_counter() - started
                        rows.append({"rep": rep, "what": what, "seconds": seconds, "load": os.getloadavg()[0]})
                        print(f"rep {rep}: {what}: {seconds:.2f} s", flush=True)
                finally:
                    context.close()
                    server.stop()
                    remove_duckdb(path)
        finally:
            browser.close()
    summary = []
    for what in dict.fromkeys(r["what"] for r in rows):
        times = [r["seconds"] for r in rows if r["what"] == what]
        summary.append({"algorithm": "", "what": f"studio: {what}", "median_s": statistics.median(times),
                        "runs": times, "traders": 20_000, "target_s": STUDIO_TARGET_S})
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", default="kmeans,gmm,hdbscan")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db-assign", default="duckdb", help="backends for the saved-run path, or 'none'")
    parser.add_argument("--studio", action="store_true", help="time the studio's interactions in a browser instead")
    parser.add_argument("--reps", type=int, default=3, help="--studio: repetitions, each on a fresh server")
    args = parser.parse_args()
    if args.studio:
        rows = bench_studio(args.reps)
        print("\n| interaction (demo, 20,000 traders) | median s | runs | within 2 s |\n|---|---:|---|---|")
        for r in rows:
            within = "yes" if r["median_s"] <= STUDIO_TARGET_S else "NO"
            print(f"| {r['what'].removeprefix('studio: ')} | {r['median_s']:.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in r['runs'])} | {within} |")
        _append(rows)
        return
    long_reads()
    engine = database.get_engine(f"duckdb:///{DUCKDB_PATH}", read_only=True)
    started = time.perf_counter()
    snapshot = compute_features(engine)
    features_s = time.perf_counter() - started
    truth = personas(engine)
    database.dispose_engines()
    print(f"snapshot as of {snapshot.as_of:%Y-%m-%d}: {len(snapshot.frame):,} traders in {features_s:.1f} s "
          "(benchmarks/features_bench.py measures it)", flush=True)
    rows: list[dict] = [{"algorithm": "", "what": "feature snapshot (reference)", "median_s": features_s,
                         "runs": [features_s], "traders": len(snapshot.frame)}]
    fitted: dict[str, seg.Clustering] = {}
    for algorithm in args.algorithms.split(","):
        found, fitted[algorithm] = bench_algorithm(snapshot, truth, algorithm, args.runs)
        rows += found
    if args.db_assign != "none":
        clustering = fitted.get("kmeans") or next(iter(fitted.values()))
        for backend in args.db_assign.split(","):
            rows.append(bench_db_assign(backend, clustering, args.runs))
    print("\n| algorithm | what | traders | median s | target s | within | ARI vs personas | stability |\n"
          "|---|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        target = TARGETS["assign"] if r["what"].startswith("assign") else TARGETS.get(r["what"])
        r["target_s"] = target
        within = "" if target is None else ("yes" if r["median_s"] <= target else "NO")
        print(f"| {r['algorithm']} | {r['what']} | {r['traders']:,} | {r['median_s']:.3f} | "
              f"{'' if target is None else target} | {within} | {r.get('ari_vs_personas', '')} | "
              f"{r.get('stability', '')} |")
    _append(rows)


def _append(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    previous.append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                     "machine": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg(), "rows": rows})
    RESULTS.write_text(json.dumps(previous, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
