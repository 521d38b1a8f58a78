"""The churn, deposit and FTD models at 200,000 traders: training, scoring every trader with stored
SHAP reasons, the global SHAP summary and one trader's waterfall, on DuckDB and PostgreSQL, beside
the strongest simple alternatives.

    .venv/bin/python benchmarks/models_bench.py                        # both backends, 3 runs of each
    .venv/bin/python benchmarks/models_bench.py --backends duckdb --runs 5 --models churn
    .venv/bin/python benchmarks/models_bench.py --browser             # + the waterfall in Chromium

Data: the 200,000-trader benchmark databases of benchmarks/analytics_bench.py (``data/bench/analytics.duckdb``
and ``traderlens_analytics_bench``; TRADERLENS_BENCH_DUCKDB and TRADERLENS_BENCH_PG_URL override them).
They are never written: each backend works on a scratch copy (``analytics_bench.scratch_copy``: the
DuckDB file copied, the PostgreSQL database cloned), migrated, removed at the end.

For each model and backend, ``--runs`` times each (the table shows medians; every run is in the
results file):

1. **Training** end to end, ``train_model`` with its defaults (cut-off: the day after the newest day
   of data), split into its own timings: data (the feature snapshot and labels of six snapshot
   dates; the feature snapshots' share is timed inside), fit (XGBoost with early stopping), random
   split (the comparison model), summary (the global SHAP summary and the drift reference) and the
   rest (calibration, evaluation, baseline) by difference. The last run is saved (``save_run``: the
   first of its kind is active).
2. **Scoring** every trader of the population with stored reasons, ``score_model`` end to end, its
   parts timed inside the same calls (the module's functions wrapped by a timer while it runs): the
   scoring snapshot (of which the feature snapshot), the contributions (also as rows/s), the top
   reasons, the drift, the write transaction (of which the insert); the rest (the reasons' JSON,
   bands, deciles) by difference.
3. **Global summary**: ``training.global_summary`` on the scoring snapshot (it samples
   ``SUMMARY_ROWS`` = 5,000 rows), and what a page pays to show the stored one (``active_run``).
4. **One trader's waterfall**, nothing cached (after one uncounted call): the reads Trader 360's
   scores section makes (``scoring.trader_scores``, each model's ``latest_score_run``, each score's
   run for the typical values) and each score's waterfall as the section draws it
   (components/trader360_scores.py: Vega-Lite, its data as the Arrow bytes and the spec as the JSON
   Streamlit sends); a Plotly ``go.Waterfall`` of the same scores, serialised, beside it. The trader
   is one the most models score (two at most: the deposit and FTD populations exclude each other,
   so churn and deposit, or churn and FTD). ``--browser`` also times it on screen: the app served
   (``cli.py serve``) on the scratch copy, Chromium (/usr/bin/chromium) opened on the trader's link,
   from navigation until every waterfall has drawn.

Alternatives, once per model on the first backend's data (they are in-memory work; the database
does not change them):
- ``shap.TreeExplainer(booster)(X)`` against ``Booster.predict(pred_contribs=True)`` on the same
  rows (``--shap-rows``): the largest difference of the values is reported and must stay within
  1e-5 (shap 0.51 calls XGBoost's own TreeSHAP for an XGBoost model and adds its explainer set-up
  and an additivity check; the exit status is 1 otherwise), the time is compared;
- shap's probability-space explainer (``model_output="probability"``, interventional, 100
  background rows) on 2,000 rows, extrapolated to the population: why batch scoring stays in
  log-odds;
- for the feature read, the baseline is DuckDB's own fast fetch of the raw rows in
  benchmarks/features_bench.py (``results/features.json``), cited in the table.

Targets (issue 13): training each model <= 90 s; scoring every trader with stored reasons <= 60 s;
the global summary (>= 5,000 rows) <= 30 s; one trader's waterfall on screen < 300 ms.

Every block first waits (up to ``--max-wait`` s) for the 1-minute load average to fall below
``--max-load`` (other work on the 2 cores is timed too) and records the load before and after.
Prints a Markdown table and writes every run to benchmarks/results/models.json (one entry per
backend, replaced by the next run of that backend).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from analytics.models import dataset, explain, scoring, training  # noqa: E402
from analytics.models.dataset import MODEL_FEATURES  # noqa: E402
from analytics.models.registry import active_run, get_run, load_booster, save_run  # noqa: E402
from analytics.models.specs import MODELS, ModelSpec, model_spec  # noqa: E402
from benchmarks.analytics_bench import scratch_copy  # noqa: E402
from connectors import database  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "models.json"
FEATURES_RESULTS = ROOT / "benchmarks" / "results" / "features.json"
TARGETS = {"train_s": 90.0, "score_s": 60.0, "summary_s": 30.0, "waterfall_s": 0.3}
PROBABILITY_ROWS = 2_000
BACKGROUND_ROWS = 100
BY = "models_bench"
SAME_VALUES = 1e-5  # shap's and XGBoost's TreeSHAP: the same code, so equal to float rounding


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------

def load() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet(max_load: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) for the 1-minute load average to fall below ``max_load``; the load
    average when starting."""
    deadline = time.monotonic() + max_wait_s
    while max_load > 0 and os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)
    return load()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Block:
    """A measured block's load averages (before, after), for the results file."""

    def __init__(self, args: argparse.Namespace, name: str) -> None:
        self.args, self.name = args, name

    def __enter__(self) -> Block:
        self.before = wait_for_quiet(self.args.max_load, self.args.max_wait)
        say(f"  {self.name} (load {self.before})")
        return self

    def __exit__(self, *exc) -> None:
        self.after = load()

    @property
    def loads(self) -> list[float]:
        return [self.before, self.after]


class Clock:
    """Seconds spent in named functions of the analytics modules while :meth:`installed`: each is
    replaced in its module by a wrapper that adds its time (a context manager from entry to exit)
    to ``spent[label]``, so a real call's parts are timed inside that call. ``last`` keeps each
    label's latest result."""

    def __init__(self, targets: list[tuple[object, str, str]]) -> None:
        self.targets = targets
        self.spent: dict[str, float] = {}
        self.last: dict[str, object] = {}

    def _wrap(self, fn: Callable, label: str, context: bool) -> Callable:
        clock = self

        if context:
            @contextlib.contextmanager
            def wrapped_context(*a, **k):
                started = time.perf_counter()
                try:
                    with fn(*a, **k) as value:
                        yield value
                finally:
                    clock.spent[label] = clock.spent.get(label, 0.0) + time.perf_counter() - started
            return wrapped_context

        @functools.wraps(fn)
        def wrapped(*a, **k):
            started = time.perf_counter()
            try:
                out = fn(*a, **k)
            finally:
                clock.spent[label] = clock.spent.get(label, 0.0) + time.perf_counter() - started
            clock.last[label] = out
            return out
        return wrapped

    @contextlib.contextmanager
    def installed(self):
        originals = [(module, name, getattr(module, name)) for module, name, _ in self.targets]
        try:
            for (module, name, label), (_, _, fn) in zip(self.targets, originals, strict=True):
                setattr(module, name, self._wrap(fn, label, context=name == "writing"))
            yield self
        finally:
            for module, name, fn in originals:
                setattr(module, name, fn)

    def take(self) -> dict[str, float]:
        """The seconds spent since the last take, by label (and reset)."""
        spent, self.spent = {k: round(v, 3) for k, v in self.spent.items()}, {}
        return spent


# --------------------------------------------------------------------------------------------
# The waterfall figure
# --------------------------------------------------------------------------------------------

def component_waterfall() -> tuple[str, Callable | None]:
    """The Trader 360 section's waterfall (its name, a function (spec, score, medians) -> what
    Streamlit sends: the Arrow bytes of the chart's data and the Vega-Lite spec as JSON), when
    components/trader360_scores.py offers one."""
    if importlib.util.find_spec("components.trader360_scores") is None:
        return "components/trader360_scores.py not there yet", None
    module = importlib.import_module("components.trader360_scores")
    # Its cached loaders warn "No runtime found" outside a server, once per call.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if not all(hasattr(module, f) for f in ("waterfall_frame", "chart_data", "waterfall_spec")):
        return "components/trader360_scores.py without waterfall_frame / chart_data / waterfall_spec", None
    from streamlit import dataframe_util

    def draw(spec: ModelSpec, score: scoring.TraderScore, medians: dict) -> tuple[bytes, str]:
        frame = module.waterfall_frame(spec, score.explanation, medians)
        return (dataframe_util.convert_anything_to_arrow_bytes(module.chart_data(frame)),
                json.dumps(module.waterfall_spec(frame)))

    return "Vega-Lite: components.trader360_scores waterfall_frame + chart_data + waterfall_spec", draw


def plotly_waterfall(spec: ModelSpec, score: scoring.TraderScore) -> str:
    """For comparison, a Plotly ``go.Waterfall`` of the stored explanation (base, each stored reason,
    the rest, the score, in calibrated log-odds), serialised as ``st.plotly_chart`` sends it."""
    e = score.explanation
    labels = ["Base", *(r.feature for r in e.reasons), f"{e.rest_count} other features", "Score"]
    values = [e.base, *(r.contribution for r in e.reasons), e.rest, e.log_odds]
    measures = ["absolute", *(["relative"] * (len(e.reasons) + 1)), "total"]
    fig = go.Figure(go.Waterfall(orientation="h", y=labels[::-1], x=values[::-1], measure=measures[::-1],
                                 text=[f"{v:+.2f}" for v in values[::-1]]))
    fig.update_layout(title=f"{spec.title}: {score.probability:.0%} ({spec.question.lower()})",
                      xaxis_title="calibrated log-odds", height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig.to_json()


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------

def train(engine: sa.Engine, spec: ModelSpec, args: argparse.Namespace) -> tuple[dict, training.TrainedModel]:
    runs, trained = [], None
    # The feature snapshots inside "data" (one per snapshot date; the rest is the labels' SQL).
    clock = Clock([(dataset, "compute_features", "features_s")])
    with Block(args, f"train {spec.name}") as block, clock.installed():
        for i in range(args.runs):
            seconds, trained = timed(lambda: training.train_model(engine, spec))
            t = trained.timings
            parts = {k: round(t[k], 3) for k in ("data_s", "fit_s", "random_split_s", "summary_s")}
            runs.append({"run": i + 1, "wall_s": round(seconds, 3), **parts,
                         "rest_s": round(t["total_s"] - sum(parts.values()), 3), **clock.take(), "load": load()})
            say(f"    run {i + 1}: {seconds:.1f} s {parts}, features {runs[-1].get('features_s')} s")
    save_s, _ = timed(lambda: save_run(engine, trained, by=BY, features=MODEL_FEATURES))
    row = {"runs": runs, "loads": block.loads, "save_run_s": round(save_s, 3),
           "median": {k: med([r[k] for r in runs]) for k in runs[0] if k not in ("run", "load")},
           "snapshots": len(trained.plan.train) + 2, "counts": trained.counts,
           "best_iteration": trained.best_iteration, "test_roc_auc": round(trained.test.roc_auc, 4),
           "test_ece": round(trained.test.ece, 4), "cutoff": trained.plan.cutoff.isoformat()}
    return row, trained


SCORE_PARTS = ("snapshot_s", "contributions_s", "top_reasons_s", "drift_s", "write_s")


def score(engine: sa.Engine, spec: ModelSpec, args: argparse.Namespace) -> tuple[dict, object]:
    """``score_model`` end to end, its parts timed inside each call: the scoring snapshot (of which
    the feature snapshot), the contributions, the top reasons, the drift, the write transaction
    (delete + insert of the scores + the score_runs row, of which the insert); the rest (the reasons'
    JSON, bands, deciles, histogram, the active run and booster) by difference."""
    clock = Clock([(scoring, "scoring_snapshot", "snapshot_s"), (dataset, "compute_features", "features_s"),
                   (scoring, "contributions", "contributions_s"), (scoring, "top_reasons", "top_reasons_s"),
                   (scoring, "drift", "drift_s"), (scoring, "writing", "write_s"),
                   (scoring, "bulk_insert", "insert_s")])
    runs = []
    with Block(args, f"score {spec.name}") as block, clock.installed():
        for i in range(args.runs):
            seconds, scored = timed(lambda: scoring.score_model(engine, spec, by=BY))
            parts = clock.take()
            runs.append({"run": i + 1, "wall_s": round(seconds, 3), "recorded_s": round(scored.run.duration_s, 3),
                         "traders": scored.run.traders, **parts,
                         "rest_s": round(seconds - sum(parts[k] for k in SCORE_PARTS), 3), "load": load()})
            say(f"    run {i + 1}: {seconds:.1f} s, {scored.run.traders:,} traders {parts}")
    snap = clock.last["snapshot_s"]
    medians = {k: med([r[k] for r in runs]) for k in runs[0] if k not in ("run", "load", "traders")}
    row = {"runs": runs, "loads": block.loads, "traders": runs[-1]["traders"], "median_s": medians["wall_s"],
           "parts": medians, "contributions_rows_per_s": len(snap) / medians["contributions_s"]}
    run = active_run(engine, spec.name)
    return row, (snap, load_booster(engine, run.run_id), run)


def summary(engine: sa.Engine, spec: ModelSpec, snap, booster, run, args: argparse.Namespace) -> dict:
    with Block(args, f"global summary {spec.name}") as block:
        times = []
        for _ in range(args.runs):
            seconds, result = timed(lambda: training.global_summary(booster, run.calibration, snap.x))
            times.append(seconds)
        stored = []
        for _ in range(args.runs):
            seconds, _ = timed(lambda: active_run(engine, spec.name))
            stored.append(seconds)
    return {"rows": result.rows, "runs_s": times, "median_s": med(times), "stored_read_runs_s": stored,
            "stored_read_median_s": med(stored), "loads": block.loads}


def alternatives(spec: ModelSpec, snap, booster, run, args: argparse.Namespace) -> dict:
    import shap

    rows = snap.x.iloc[: min(args.shap_rows, len(snap))]
    with Block(args, f"alternatives {spec.name}") as block:
        ours, theirs, setup = [], [], []
        phi = values = None
        for _ in range(args.runs):
            seconds, (phi, base) = timed(lambda: explain.contributions(booster, rows))
            ours.append(seconds)
            s, explainer = timed(lambda: shap.TreeExplainer(booster))
            seconds, values = timed(lambda e=explainer: e(rows))
            setup.append(s)
            theirs.append(s + seconds)
        max_diff = float(np.abs(values.values - phi).max())
        base_diff = float(np.abs(np.ravel(values.base_values) - base).max())
        # The probability-space explainer: interventional TreeSHAP against a background sample.
        background = snap.x.sample(BACKGROUND_ROWS, random_state=0)
        sample = snap.x.sample(min(PROBABILITY_ROWS, len(snap)), random_state=1)
        started = time.perf_counter()
        prob = shap.TreeExplainer(booster, data=background, model_output="probability",
                                  feature_perturbation="interventional")
        prob_values = prob.shap_values(sample)
        prob_s = time.perf_counter() - started
        p = 1 / (1 + np.exp(-explain.margins(booster, sample)))
        prob_additive = float(np.abs(prob_values.sum(axis=1) + float(np.ravel(prob.expected_value)[0]) - p).max())
    ours_m, theirs_m = med(ours), med(theirs)
    return {"rows": len(rows), "pred_contribs_runs_s": ours, "pred_contribs_median_s": ours_m,
            "shap_runs_s": theirs, "shap_setup_runs_s": setup, "shap_median_s": theirs_m,
            "shap_over_pred_contribs": theirs_m / ours_m, "max_abs_diff": max_diff, "base_abs_diff": base_diff,
            "probability": {"rows": len(sample), "background": BACKGROUND_ROWS, "seconds": prob_s,
                            "rows_per_s": len(sample) / prob_s, "population": len(snap),
                            "population_estimate_s": prob_s * len(snap) / len(sample),
                            "additivity_max_abs": prob_additive},
            "loads": block.loads}


def pick_trader(engine: sa.Engine, models: list[str]) -> int:
    """A trader every benchmarked model scores when there is one (else the most-scored)."""
    from connectors.schema import model_scores

    s = model_scores.c
    with engine.connect() as conn:
        return int(conn.execute(sa.select(s.trader_id).where(s.model.in_(models)).group_by(s.trader_id)
                                .order_by(sa.func.count().desc(), s.trader_id).limit(1)).scalar_one())


def waterfall(engine: sa.Engine, trader_id: int, args: argparse.Namespace) -> dict:
    """One trader's scores as Trader 360 shows them, nothing cached: the reads its section makes (the
    trader's stored scores, each model's latest scoring, each score's run for the typical values),
    then each score's waterfall as the section draws it and serialises it; a Plotly waterfall of the
    same scores beside it."""
    figure_name, draw = component_waterfall()

    def read() -> tuple[dict, dict]:
        scores = scoring.trader_scores(engine, trader_id)
        for name in MODELS:
            scoring.latest_score_run(engine, name)
        return scores, {m: get_run(engine, sc.run_id).medians for m, sc in scores.items()}

    def figures(scores: dict, medians: dict) -> list:
        return [draw(MODELS[m], sc, medians[m]) for m, sc in scores.items()] if draw else []

    def plotly(scores: dict) -> list:
        return [plotly_waterfall(MODELS[m], sc) for m, sc in scores.items()]

    scores, medians = read()  # warm-up, not counted
    figures(scores, medians)
    plotly(scores)
    reads, figs, plots = [], [], []
    with Block(args, "waterfall") as block:
        for _ in range(args.waterfall_runs):
            a, (scores, medians) = timed(read)
            b, _ = timed(lambda s=scores, m=medians: figures(s, m))
            c, _ = timed(lambda s=scores: plotly(s))
            reads.append(a)
            figs.append(b)
            plots.append(c)
    total = [a + b for a, b in zip(reads, figs, strict=True)]
    return {"trader_id": trader_id, "models": sorted(scores), "figure": figure_name, "runs": args.waterfall_runs,
            "read_median_s": med(reads), "figure_median_s": med(figs) if draw else None,
            "total_median_s": med(total), "total_max_s": max(total), "plotly_median_s": med(plots),
            "read_plus_plotly_median_s": med([a + c for a, c in zip(reads, plots, strict=True)]),
            "loads": block.loads}


def browser_waterfall(url: str, trader_id: int, models: list[str], args: argparse.Namespace) -> dict:
    """On screen in Chromium: the app served (``cli.py serve``) on the scratch copy, the trader's page
    opened from a link in a new browser context each time, seconds from navigation until every
    waterfall of the trader's scores has drawn (its chart's SVG visible), with the moments each
    earlier section appeared; then that tab reloaded (the trader's figures cached by the server),
    and for scale the page without a trader (Streamlit's own floor on this server). The first visit
    after the server's start is reported apart, not in the medians."""
    if importlib.util.find_spec("components.trader360_scores") is None:
        return {"skipped": "components/trader360_scores.py is not there yet: no waterfall on the page to time"}
    from playwright.sync_api import sync_playwright

    from benchmarks.pages_bench import CHROMIUM, Server
    from connectors.schema import traders

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        external = conn.execute(sa.select(traders.c.external_id).where(traders.c.trader_id == trader_id)).scalar_one()
    engine.dispose()
    database.dispose_engines()  # DuckDB: one process per file, the server's
    # The page's sections in the order they draw (pages/trader.py SECTIONS), then each score's
    # bordered container (key trader360.scores.<model>) with its Vega-Lite waterfall, drawn as SVG:
    # the differences between marks say which section the time goes to.
    marks = {"profile": ".st-key-trader360-accounts",
             "timeline": ".st-key-trader360-timeline [data-testid='stVegaLiteChart'] canvas",
             "features": ".st-key-trader360-features [data-testid='stDataFrame']",
             **{f"waterfall {m}": f".st-key-trader360-scores-{m} [data-testid='stVegaLiteChart'] svg.marks"
                for m in models}}
    server = Server(url)
    runs = []
    try:
        with sync_playwright() as playwright, Block(args, "waterfall in the browser") as block:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            def visit(path: str, selectors: dict[str, str], *, reload: bool = False) -> dict[str, float]:
                """Seconds from navigation until each selector is visible, in order (in a new browser
                context: nothing in its HTTP cache); with ``reload``, then the tab reloaded until the
                last one is visible again (the server's caches now hold the trader)."""
                context = browser.new_context(viewport={"width": 1440, "height": 2000})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{server.url}{path}")
                seen = {}
                for name, selector in selectors.items():
                    page.locator(selector).first.wait_for(state="visible", timeout=120_000)
                    seen[name] = round(time.perf_counter() - started, 3)
                if reload:
                    started = time.perf_counter()
                    page.reload()
                    for selector in selectors.values():
                        page.locator(selector).first.wait_for(state="visible", timeout=120_000)
                    seen["reloaded"] = round(time.perf_counter() - started, 3)
                context.close()
                return seen

            for _ in range(args.browser_runs + 1):
                # Streamlit's floor on this server: the same page without a trader, its search box.
                floor = visit("/trader", {"search": ".st-key-trader360-search input"})["search"]
                seen = {**visit(f"/trader?trader={external}", marks, reload=True), "empty page": floor}
                runs.append(seen)
                say(f"    {seen}")
            browser.close()
    finally:
        server.stop()
    last = list(marks)[-1]
    times = [r[last] for r in runs]
    section = [r[last] - r["features"] for r in runs]
    return {"url": f"/trader?trader={external}", "marks": marks, "first_visit": runs[0], "runs": runs[1:],
            "first_visit_s": times[0], "median_s": med(times[1:]), "marks_median_s": {
                k: med([r[k] for r in runs[1:]]) for k in [*marks, "reloaded", "empty page"]},
            "scores_section_median_s": med(section[1:]), "loads": block.loads}


# --------------------------------------------------------------------------------------------
# One backend
# --------------------------------------------------------------------------------------------

def bench(backend: str, models: list[str], args: argparse.Namespace, with_alternatives: bool) -> dict:
    say(f"{backend}: scratch copy")
    url, remove = scratch_copy(backend, "models_bench")
    out: dict = {"backend": backend, "models": {}}
    try:
        engine = database.get_engine(url)
        database.upgrade_schema(engine)
        for name in models:
            spec = model_spec(name)
            say(f"{backend} {name}")
            row: dict = {}
            row["train"], _ = train(engine, spec, args)
            row["score"], (snap, booster, run) = score(engine, spec, args)
            row["summary"] = summary(engine, spec, snap, booster, run, args)
            if with_alternatives:
                row["alternatives"] = alternatives(spec, snap, booster, run, args)
            out["models"][name] = row
        trader_id = pick_trader(engine, models)
        out["waterfall"] = waterfall(engine, trader_id, args)
        if args.browser:
            engine.dispose()
            try:
                out["waterfall_browser"] = browser_waterfall(url, trader_id, out["waterfall"]["models"], args)
            except Exception as exc:  # the figures above are kept; the error is reported with them
                out["waterfall_browser"] = {"skipped": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"}
                say(f"  browser: {out['waterfall_browser']['skipped']}")
    finally:
        database.dispose_engines()
        remove()
    return out


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def within(value: float, target: float) -> str:
    return "yes" if value <= target else "**NO**"


def fmt(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 1 else f"{seconds:.1f}" if seconds < 100 else f"{seconds:.0f}"


def table(results: dict[str, dict], runs: int) -> str:
    lines = [f"| backend | model | what | median s (of {runs}) | parts (medians) | target | within |",
             "|---|---|---|---:|---|---:|---|"]
    for backend, res in results.items():
        for name, row in res["models"].items():
            t = row["train"]["median"]
            c = row["train"]["counts"]
            lines.append(
                f"| {backend} | {name} | train ({c['train_rows']:,} training rows, {row['train']['best_iteration'] + 1}"
                f" trees) | {fmt(t['wall_s'])} | data {fmt(t['data_s'])} (of which {row['train']['snapshots']} "
                f"feature snapshots {fmt(t.get('features_s', float('nan')))}), fit {fmt(t['fit_s'])}, random split "
                f"{fmt(t['random_split_s'])}, summary {fmt(t['summary_s'])}, rest {fmt(t['rest_s'])} | 90 | "
                f"{within(t['wall_s'], TARGETS['train_s'])} |")
            s = row["score"]
            p = s["parts"]
            lines.append(
                f"| {backend} | {name} | score + store reasons ({s['traders']:,} traders) | {fmt(s['median_s'])} | "
                f"snapshot {fmt(p['snapshot_s'])} (features {fmt(p['features_s'])}), contributions "
                f"{fmt(p['contributions_s'])} ({s['contributions_rows_per_s']:,.0f} rows/s), top reasons "
                f"{fmt(p['top_reasons_s'])}, drift {fmt(p['drift_s'])}, write {fmt(p['write_s'])} (insert "
                f"{fmt(p['insert_s'])}), rest {fmt(p['rest_s'])} | 60 | {within(s['median_s'], TARGETS['score_s'])} |")
            g = row["summary"]
            lines.append(
                f"| {backend} | {name} | global SHAP summary ({g['rows']:,} rows) | {fmt(g['median_s'])} | "
                f"reading the stored one: {fmt(g['stored_read_median_s'])} | 30 | "
                f"{within(g['median_s'], TARGETS['summary_s'])} |")
        w = res["waterfall"]
        figure = (f"Vega-Lite figures {fmt(w['figure_median_s'])}" if w["figure_median_s"] is not None
                  else f"no Vega-Lite figure ({w['figure']})")
        lines.append(
            f"| {backend} | {', '.join(w['models'])} | one trader's scores: reads + waterfalls ({w['runs']} runs) | "
            f"{fmt(w['total_median_s'])} | reads {fmt(w['read_median_s'])}, {figure}; Plotly instead "
            f"{fmt(w['plotly_median_s'])} | 0.3 | {within(w['total_median_s'], TARGETS['waterfall_s'])} |")
        b = res.get("waterfall_browser")
        if b and "median_s" in b:
            m = b["marks_median_s"]
            lines.append(f"| {backend} | - | trader's page from a link until every waterfall is drawn, Chromium | "
                         f"{fmt(b['median_s'])} | profile {fmt(m['profile'])}, timeline {fmt(m['timeline'])}, features "
                         f"{fmt(m['features'])}; the scores section after the features "
                         f"{fmt(b['scores_section_median_s'])}; first visit {fmt(b['first_visit_s'])}; the tab "
                         f"reloaded {fmt(m['reloaded'])}; the page without a trader {fmt(m['empty page'])} | 0.3 | "
                         f"{within(b['median_s'], TARGETS['waterfall_s'])} |")
        elif b:
            lines.append(f"| {backend} | - | waterfall on screen in Chromium | - | {b['skipped']} | 0.3 | - |")
    return "\n".join(lines)


def alternatives_table(results: dict[str, dict]) -> str:
    lines = ["| model | rows | pred_contribs s | shap.TreeExplainer s | shap / ours | max abs diff | "
             "probability explainer: rows/s | its estimate for the population |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results.values():
        for name, row in res["models"].items():
            a = row.get("alternatives")
            if not a:
                continue
            p = a["probability"]
            lines.append(f"| {name} | {a['rows']:,} | {fmt(a['pred_contribs_median_s'])} | {fmt(a['shap_median_s'])} | "
                         f"{a['shap_over_pred_contribs']:.2f}× | {a['max_abs_diff']:.1e} | {p['rows_per_s']:,.0f} | "
                         f"{fmt(p['population_estimate_s'])} s for {p['population']:,} |")
    if FEATURES_RESULTS.exists():
        f = json.loads(FEATURES_RESULTS.read_text()).get("duckdb", {})
        if "raw_fetch_median_s" in f:
            lines.append(f"\nFeature read baseline (benchmarks/features_bench.py): DuckDB computes the snapshot in "
                         f"{f['compute_median_s']:.2f} s; fetching the raw rows alone with DuckDB's fast fetch "
                         f"takes {f['raw_fetch_median_s']:.2f} s ({f['raw_rows']:,} rows).")
    return "\n".join(lines)


def versions() -> dict:
    import duckdb
    import shap
    import sklearn
    import xgboost

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    # Others work in the tree: the analytics and component files that differed from the commit.
    return {"python": platform.python_version(), "xgboost": xgboost.__version__, "shap": shap.__version__,
            "sklearn": sklearn.__version__, "duckdb": duckdb.__version__, "pandas": pd.__version__,
            "commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": git("status", "--porcelain", "analytics/", "components/", "pages/").splitlines(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each measurement (medians reported)")
    parser.add_argument("--waterfall-runs", type=int, default=20)
    parser.add_argument("--shap-rows", type=int, default=20_000,
                        help="rows of the shap.TreeExplainer / pred_contribs comparison")
    parser.add_argument("--no-alternatives", action="store_true")
    parser.add_argument("--browser", action="store_true", help="also time the waterfall on screen in Chromium")
    parser.add_argument("--browser-runs", type=int, default=5)
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="before each block wait for the 1-minute load average to fall below this (0: never)")
    parser.add_argument("--max-wait", type=float, default=300, help="seconds to wait for that at most")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, dict] = {}
    for i, backend in enumerate(b.strip() for b in args.backends.split(",") if b.strip()):
        results[backend] = bench(backend, models, args, with_alternatives=i == 0 and not args.no_alternatives)
        results[backend].update(started=started, finished=datetime.now(UTC).isoformat(timespec="seconds"),
                                command=" ".join(["benchmarks/models_bench.py", *sys.argv[1:]]), runs=args.runs,
                                machine=platform.platform(), cpus=os.cpu_count(), versions=versions())
        args.output.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(args.output.read_text()) if args.output.exists() else {}
        previous[backend] = results[backend]
        args.output.write_text(json.dumps(previous, indent=1, default=str) + "\n")
    print(table(results, args.runs))
    if any("alternatives" in row for r in results.values() for row in r["models"].values()):
        print()
        print(alternatives_table(results))
    loads = [x for r in results.values() for m in r["models"].values() for part in m.values()
             if isinstance(part, dict) for x in part.get("loads", [])]
    if loads:
        print(f"\nload average (1 min) over the blocks: {min(loads)}-{max(loads)} on {os.cpu_count()} cores")
    print(f"wrote {args.output}")
    differ = [f"{b} {m}" for b, r in results.items() for m, row in r["models"].items()
              if row.get("alternatives", {}).get("max_abs_diff", 0.0) > SAME_VALUES]
    if differ:
        print(f"shap.TreeExplainer and pred_contribs differ by more than {SAME_VALUES}: {', '.join(differ)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
