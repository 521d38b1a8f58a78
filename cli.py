"""TraderLens command line: the app's capabilities for cron jobs and scripts.

    python cli.py setup                 bring the schema up to date; seed the demo on first use
    python cli.py serve [STREAMLIT OPTIONS]   setup, warm up, then serve the app (what `make run` does)
    python cli.py seed [--traders N] [--days D] [--seed S] [--end DATE] [--replace]
    python cli.py import PATH [--kind K] [--trader EXTERNAL_ID] [--create-missing-traders]
                              [--server-utc-offset HOURS]
    python cli.py info
    python cli.py changes [--external-id X] [--import N] [--table T] [--format json|csv]
    python cli.py report funnel|retention|lifecycle|kpis ... --format json|csv
    python cli.py features [--as-of DATE] --out FILE.csv
    python cli.py segment --k K [--algorithm kmeans|gmm|hdbscan] [--features default|LIST] [--as-of DATE]
                          [--seed S] [--out FILE.csv] [--save NAME]
    python cli.py segments list | refresh [NAME ...] | export NAME --out FILE.csv
    python cli.py train --model churn|deposit|ftd [--as-of DATE] [--snapshots N]
    python cli.py score --model churn|deposit|ftd [--as-of DATE] [--out FILE.csv] [--device cpu|cuda]
    python cli.py models list [--model M] | promote RUN_ID

Every command reads TRADERLENS_DB_URL (default: the embedded DuckDB file data/traderlens.duckdb),
exits 0 on success and non-zero with a one-line reason on failure. Set TRADERLENS_DEBUG=1 to see
the stack trace of an unexpected error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from connectors.errors import TraderLensError


def _progress_bar(stream=sys.stderr):
    """A progress callback drawing one updating line on a terminal (plain lines otherwise)."""
    started = time.perf_counter()
    last = {"stage": None}

    def show(stage: str, fraction: float) -> None:
        elapsed = time.perf_counter() - started
        if stream.isatty():
            filled = int(30 * fraction)
            stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {stage:<28} {elapsed:5.0f}s")
            if fraction >= 1:
                stream.write("\n")
        elif stage != last["stage"]:
            stream.write(f"{fraction:4.0%} {stage} ({elapsed:.0f}s)\n")
        last["stage"] = stage
        stream.flush()

    return show


def _engine(*, write: bool = False, adopt_zone: bool = False):
    """The configured engine with the schema brought up to date (every command starts here).

    Read-only unless the command ``write``s: on the embedded DuckDB file, reports and ``info`` then
    run beside the app, and a writer waits for the app to let go of the file (TRADERLENS_DUCKDB_WAIT_S).
    Only ``adopt_zone`` commands (setup, seed, serve) rebuild the rollups of a database that reports in
    another time zone than TRADERLENS_REPORTING_TZ; the others refuse, so a scheduled report run
    without the setting cannot switch the broker's zone.
    """
    from connectors.database import get_engine, prepare

    rebuilt = prepare(adopt_zone=adopt_zone)
    if rebuilt:
        _note(f"rebuilt the daily rollups: {rebuilt}")
    return get_engine(read_only=not write)


def _config(args: argparse.Namespace):
    from connectors.simulator import SimulationConfig

    return SimulationConfig(traders=args.traders, days=args.days, seed=args.seed, end=args.end)


def cmd_seed(args: argparse.Namespace) -> int:
    from connectors.simulator import seed_database

    engine = _engine(write=True, adopt_zone=True)
    cfg = _config(args)
    progress = _progress_bar()
    progress(f"seeding {cfg.traders} traders, {cfg.days} days to {cfg.end_date()}, seed {cfg.seed}", 0.0)
    summary = seed_database(engine, cfg, replace=args.replace, progress=progress)
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    print(f"seeded in {summary.simulate_s + summary.write_s:.1f}s "
          f"(simulate {summary.simulate_s:.1f}s, write {summary.write_s:.1f}s): {rows}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Migrate; seed a demo broker when the database is empty and is the embedded one."""
    import sqlalchemy as sa

    from connectors import schema
    from connectors.database import redact
    from connectors.simulator import seed_database

    engine = _engine(adopt_zone=True)
    with engine.connect() as conn:
        traders = conn.execute(sa.select(sa.func.count()).select_from(schema.traders)).scalar_one()
    demo_allowed = engine.dialect.name == "duckdb" or os.environ.get("TRADERLENS_SEED_DEMO") == "1"
    if traders:
        print(f"{redact(str(engine.url))}: schema up to date, {traders:,} traders.")
    elif demo_allowed:
        print("First start: creating the demo broker (20,000 simulated traders over 18 months).",
              file=sys.stderr)
        writer = _engine(write=True, adopt_zone=True)
        summary = seed_database(writer, _config(args), progress=_progress_bar())
        print(f"Demo database ready in {summary.simulate_s + summary.write_s:.0f}s.")
        _demo_models(writer)
    else:
        print(f"{redact(str(engine.url))} is empty. Import your data (python cli.py import ...) or "
              "seed a demo with TRADERLENS_SEED_DEMO=1.")
    return 0


def _demo_models(engine) -> None:
    """Train and score the three models on a new demo database, so the Predictions page and Trader 360
    have scores at the first visit (the demo's data allows it; a broker's own data gets its models from
    `cli.py train`, where a model of too little data says so)."""
    from analytics.models.dataset import MODEL_FEATURES, NotEnoughHistory
    from analytics.models.registry import save_run
    from analytics.models.scoring import score_model
    from analytics.models.specs import MODELS
    from analytics.models.training import train_model

    started = time.perf_counter()
    for spec in MODELS.values():
        print(f"Training the demo's {spec.name} model.", file=sys.stderr)
        try:
            trained = train_model(engine, spec, progress=_train_progress())
        except NotEnoughHistory as exc:  # a demo of a few days (--days): the app works without models
            _note(f"no demo {spec.name} model: {exc}")
            continue
        save_run(engine, trained, by="demo setup", features=MODEL_FEATURES)
        score_model(engine, spec, by="demo setup")
    print(f"Demo models trained and scored in {time.perf_counter() - started:.0f}s.")


def cmd_serve(args: argparse.Namespace) -> int:
    """``setup``, then the warm-up of server/warmup.py, then the Streamlit server in this process
    (so the imports and the open database are the server's own; a separate ``streamlit run`` would
    pay for them again on the first page view). Once it answers, each analytics page runs once."""
    status = cmd_setup(args)
    if status:
        return status
    from connectors.database import dispose_engines

    dispose_engines()  # the app opens the file read-only; keep no read-write engine of setup's
    from server.warmup import preload, start_page_warmer

    timings = preload()
    print(f"Loaded: imports {timings['imports_s']:.1f}s, funnel kernels {timings['kernels_s']:.1f}s.",
          file=sys.stderr)
    if not args.no_warm_pages:
        start_page_warmer()  # runs each analytics page once as soon as the server answers
    from streamlit.web import cli as streamlit_cli

    sys.argv = ["streamlit", "run", str(Path(__file__).resolve().parent / "app.py"), *args.streamlit_options]
    return streamlit_cli.main()


def cmd_import(args: argparse.Namespace) -> int:
    from connectors.importers import import_file

    path = Path(args.path)
    if not path.is_file():
        raise TraderLensError(f"{path}: no such file")
    from connectors.importers import os_user

    result = import_file(_engine(write=True), path, kind=args.kind, trader=args.trader,
                         create_missing_traders=args.create_missing_traders,
                         server_utc_offset_hours=args.server_utc_offset, changed_by=f"cli:{os_user()}")
    written = ", ".join(f"{table} {n:,}" for table, n in result.inserted.items() if n) or "nothing new"
    updated = ", ".join(f"{table} {n:,}" for table, n in result.updated.items() if n) or "nothing"
    print(f"{result.file} ({result.kind}): read {result.rows_read:,} rows; wrote {written}; updated {updated}; "
          f"{result.unchanged:,} unchanged; skipped {result.skipped:,} already present or repeated"
          + (f" (import {result.import_id})" if sum(result.updated.values()) else ""))
    if result.changed_fields:
        print("changed: " + ", ".join(f"{field} {n:,}" for field, n in sorted(result.changed_fields.items())))
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    from analytics.changes import compute_row_changes

    frame = compute_row_changes(_engine(), external_id=args.external_id, import_id=args.import_id,
                                table=args.table, limit=args.limit)
    _emit(frame.to_dict("records"), args.format)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from connectors import schema
    from connectors.database import redact, schema_revision

    engine = _engine()
    from connectors.clock import reporting_zone

    print(f"database  {redact(str(engine.url))} (schema revision {schema_revision(engine)})")
    print(f"reporting time zone  {reporting_zone().describe()} (TRADERLENS_REPORTING_TZ; newest times below are UTC)")
    print(f"{'table':<15}{'rows':>12}  newest")
    with engine.connect() as conn:
        for table in schema.DATA_TABLES:
            col = table.c[schema.TIME_COLUMNS[table.name]]
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(col))).one()
            print(f"{table.name:<15}{count:>12,}  {newest or '-'}")
    return 0


def _write_text(text: str, out: str) -> None:
    """``text`` to the file ``out`` ("-": standard output). A file is written beside its final name and
    renamed into place, so a failed run never leaves half a file where the last good one was."""
    if out == "-":
        sys.stdout.write(text)
        return
    target = Path(out)
    if not target.parent.is_dir():
        raise TraderLensError(f"cannot write {out}: the folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise TraderLensError(f"cannot write {out}: {exc.strerror or exc}") from None


def _with_external_ids(engine, frame):
    """``frame`` (indexed by trader_id) with the traders' external ids as its first column,
    ``trader_external_id``, and without the internal id."""
    from analytics.export import external_ids

    out = frame.reset_index(drop=True)
    out.insert(0, "trader_external_id", external_ids(engine, frame.index))
    return out


def cmd_features(args: argparse.Namespace) -> int:
    from analytics.features import compute_features

    engine = _engine()
    snapshot = compute_features(engine, as_of=args.as_of)
    # Full precision: a data file for other tools, not the rounded readable export of the pages.
    _write_text(_with_external_ids(engine, snapshot.frame).to_csv(index=False), args.out)
    _note(f"{len(snapshot.frame):,} traders, {len(snapshot.frame.columns) - 1} features and the KYC state, "
          f"from data before {snapshot.as_of:%Y-%m-%d %H:%M} UTC (the start of {snapshot.day})")
    return 0


def _feature_list(text: str) -> tuple[str, ...]:
    """'default' or comma-separated feature names (analytics.features.FEATURE_NAMES)."""
    from analytics.features import DEFAULT_CLUSTER_FEATURES, FEATURE_NAMES

    if text.strip().lower() == "default":
        return DEFAULT_CLUSTER_FEATURES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown feature(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(FEATURE_NAMES)}")
    return names


def _print_table(frame, columns: list[str], formats: dict[str, str]) -> None:
    """A small aligned table on stdout (missing values as '-')."""
    rows = [[("-" if value is None or value != value else formats.get(c, "{}").format(value))
             for c, value in zip(columns, row, strict=True)] for row in frame[columns].itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    # Numbers line up on the right, words on the left.
    text = [frame[c].map(lambda v: isinstance(v, str)).all() for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if t else v.rjust(w)
                         for v, w, t in zip(values, widths, text, strict=True)).rstrip()

    print(line(columns))
    for r in rows:
        print(line(r))


def _cli_user() -> str:
    """Who a command acts as in the records it writes: ``cli:<operating-system user>``."""
    from connectors.importers import os_user

    return f"cli:{os_user()}"


def cmd_segment(args: argparse.Namespace) -> int:
    from analytics import segmentation as seg
    from analytics.features import compute_features

    engine = _engine(write=bool(args.save))
    spec = seg.ClusterSpec(features=args.features, algorithm=args.algorithm, k=args.k, seed=args.seed)
    spec.check()
    snapshot = compute_features(engine, as_of=args.as_of)
    previous = None
    if args.save:
        # Re-running a saved clustering keeps its cluster ids (and the names given to them).
        earlier = seg.list_runs(engine)
        earlier = earlier[earlier["name"] == args.save]
        if not earlier.empty:
            previous = seg.previous_run(engine, int(earlier.iloc[0]["run_id"]))
    clustering = seg.fit_clustering(snapshot, spec, previous=previous)
    k_values = sorted({k for k in (args.k - 1, args.k, args.k + 1) if seg.MIN_K <= k <= seg.MAX_K})
    diagnostics = seg.compute_diagnostics(snapshot, spec, k_values=k_values)
    population = clustering.population
    print(f"{spec.describe()}; as of {snapshot.as_of:%Y-%m-%d %H:%M} UTC; {population.included:,} of "
          f"{population.registered:,} registered traders clustered ({seg.POPULATIONS[population.rule]})")
    if spec.algorithm == "hdbscan":
        print(f"noise (in no cluster): {clustering.noise_share:.1%}")
    print(f"diagnostics on a sample of {diagnostics.sample_rows:,} traders (silhouette on "
          f"{diagnostics.silhouette_rows:,}); stability = mean adjusted Rand index of {diagnostics.bootstraps} "
          "bootstrap refits:")
    columns = ["k", "silhouette", "calinski_harabasz", "davies_bouldin", "stability"]
    columns += ["bic"] if spec.algorithm == "gmm" else []
    columns += ["min_cluster_size", "noise_share"] if spec.algorithm == "hdbscan" else []
    _print_table(diagnostics.frame, columns, {"k": "{:.0f}", "silhouette": "{:.3f}", "calinski_harabasz": "{:,.0f}",
                                              "davies_bouldin": "{:.3f}", "stability": "{:.3f}", "bic": "{:,.0f}",
                                              "min_cluster_size": "{:.0f}", "noise_share": "{:.1%}"})
    print("clusters:")
    table = clustering.clusters.assign(top=clustering.clusters["top_features"].map(seg.describe_top))
    _print_table(table, ["cluster", "size", "share", "name", "top"],
                 {"size": "{:,}", "share": "{:.1%}"})
    if args.out:
        _write_text(seg.clustering_table(engine, clustering)[["trader_external_id", "cluster", "cluster_name"]]
                    .to_csv(index=False), args.out)
    if args.save:
        run_id = seg.save_clustering(engine, clustering, name=args.save, created_by=_cli_user(),
                                     diagnostics=diagnostics)
        print(f"saved as clustering run {run_id} ({args.save!r})"
              + (f", cluster ids continuing run {previous.run_id}" if previous else ""))
    return 0


def cmd_segments_list(args: argparse.Namespace) -> int:
    from analytics.segments import list_segments

    frame = list_segments(_engine(), include_archived=args.archived)
    columns = ["name", "kind", "version", "size", "refreshed_at", "updated_at", "updated_by", "description"]
    if args.archived:
        columns.append("archived")
    _emit(frame[columns].to_dict("records"), args.format)
    return 0


def cmd_segments_refresh(args: argparse.Namespace) -> int:
    from analytics.features import ensure_features
    from analytics.segments import refresh_segments

    engine = _engine(write=True)
    snapshot, recomputed = ensure_features(engine)
    if recomputed:
        _note(f"recomputed the feature snapshot rules read: {snapshot.traders:,} traders as of "
              f"{snapshot.as_of:%Y-%m-%d %H:%M} UTC")
    results = refresh_segments(engine, args.names or None)
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            print(f"{r.name}: NOT refreshed, members unchanged ({r.size:,}): {r.error}")
        else:
            print(f"{r.name}: {r.size:,} members (+{r.entered:,} entered, -{r.left:,} left) in {r.seconds:.2f} s")
    if not results:
        print("no saved segments")
    return 1 if failed else 0


def cmd_segments_export(args: argparse.Namespace) -> int:
    from analytics.export import to_csv
    from analytics.segments import export_members

    frame = export_members(_engine(), args.name)
    _write_text(to_csv(frame), args.out)
    _note(f"{len(frame):,} members of {args.name!r}")
    return 0


def _train_progress():
    """A progress callback for model training: the stage and its share on stderr."""
    bar = _progress_bar()
    return lambda fraction, message: bar(message, fraction)


def _metric_line(name: str, m) -> str:
    return (f"  {name:<22} ROC AUC {m.roc_auc:.3f}  PR AUC {m.pr_auc:.3f}  Brier {m.brier:.4f}  "
            f"ECE {m.ece:.4f}  top-decile lift {m.top_decile_lift:.2f}  ({m.rows:,} rows, "
            f"{m.positive_rate:.1%} positive)")


def cmd_train(args: argparse.Namespace) -> int:
    from analytics.models.dataset import MODEL_FEATURES
    from analytics.models.registry import save_run
    from analytics.models.specs import model_spec
    from analytics.models.training import train_model

    engine = _engine(write=True)
    spec = model_spec(args.model)
    trained = train_model(engine, spec, as_of=args.as_of, train_snapshots=args.snapshots,
                          progress=_train_progress())
    run = save_run(engine, trained, by=_cli_user(), features=MODEL_FEATURES)
    plan = trained.plan
    print(f"{spec.title} model v{run.version} (run {run.run_id}, {run.status}): {spec.question}")
    print(f"  data before {plan.cutoff:%Y-%m-%d %H:%M} UTC; training snapshots "
          f"{', '.join(f'{t:%Y-%m-%d}' for t in plan.train)}; early stopping on {plan.validation:%Y-%m-%d}; "
          f"calibration and test halves of {plan.test:%Y-%m-%d}")
    print(f"  {trained.counts['train_rows']:,} training rows, {trained.best_iteration + 1} trees, Platt "
          f"calibration on the margin (slope {trained.calibration.slope:.3f}, intercept "
          f"{trained.calibration.intercept:.3f}), {trained.timings['total_s']:.0f} s")
    print("out of time (test half):")
    print(_metric_line("XGBoost, calibrated", trained.test))
    print(_metric_line("XGBoost, uncalibrated", trained.test_uncalibrated))
    print(_metric_line("baseline (logistic)", trained.baseline))
    print(_metric_line("random split (flatters)", trained.random_split))
    if not trained.beats_baseline:
        print("  WARNING: this model does not beat its baseline on the test half")
    top = ", ".join(f for f, _ in trained.summary.importance[:8])
    print(f"top features by mean |SHAP|: {top}")
    if run.status == "candidate":
        print(f"saved as a candidate: the active model is unchanged; compare the cards on the Predictions page "
              f"or promote it with `python cli.py models promote {run.run_id}`")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import pandas as pd

    from analytics.models.reasons import reason_text
    from analytics.models.registry import get_run, list_runs
    from analytics.models.scoring import score_model
    from analytics.models.specs import model_spec

    engine = _engine(write=True)
    spec = model_spec(args.model)
    scored = score_model(engine, spec, by=_cli_user(), as_of=args.as_of, device=args.device,
                         progress=_train_progress())
    run = get_run(engine, scored.run.run_id)
    result = scored.run
    print(f"{spec.title}: {result.traders:,} traders scored with v{run.version} as of "
          f"{result.as_of:%Y-%m-%d %H:%M} UTC in {result.duration_s:.1f} s; mean probability "
          f"{result.distribution.get('mean') or 0:.1%}; bands {result.distribution.get('bands')}")
    if result.drift.get("alerts"):
        print(f"drift (PSI > 0.2) against the training rows: {', '.join(result.drift['alerts'])}")
    newer = [r for r in list_runs(engine, spec.name) if r.status == "candidate" and r.version > run.version]
    if newer:
        _note(f"{spec.name} v{newer[0].version} (run {newer[0].run_id}) is a newer candidate; "
              f"`python cli.py models promote {newer[0].run_id}` makes it the model that scores")
    if args.out:
        frame = scored.frame
        out = pd.DataFrame({"probability": frame["probability"], "band": frame["band"],
                            "decile": frame["decile"]}, index=frame.index)
        for i in range(args.reasons):
            out[f"reason_{i + 1}"] = [reason_text(spec, e.reasons[i], run.medians) if i < len(e.reasons) else ""
                                      for e in frame["explanation"]]
            out[f"reason_{i + 1}_feature"] = [e.reasons[i].feature if i < len(e.reasons) else ""
                                              for e in frame["explanation"]]
            out[f"reason_{i + 1}_log_odds"] = [e.reasons[i].contribution if i < len(e.reasons) else None
                                               for e in frame["explanation"]]
        _write_text(_with_external_ids(engine, out).to_csv(index=False), args.out)
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from analytics.models.registry import list_runs

    records = []
    for r in list_runs(_engine(), args.model):
        test, base = r.card("test"), r.card("baseline")
        records.append({"run_id": r.run_id, "model": r.model, "version": r.version, "status": r.status,
                        "trained_at": r.trained_at, "trained_by": r.trained_by, "cutoff": r.cutoff,
                        "roc_auc": test.roc_auc, "pr_auc": test.pr_auc, "ece": test.ece,
                        "top_decile_lift": test.top_decile_lift, "baseline_roc_auc": base.roc_auc,
                        "beats_baseline": r.beats_baseline, "promoted_at": r.promoted_at,
                        "promoted_by": r.promoted_by})
    _emit(records, args.format)
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from analytics.models.dataset import MODEL_FEATURES
    from analytics.models.registry import promote

    run = promote(_engine(write=True), args.run_id, by=_cli_user(), features=MODEL_FEATURES)
    print(f"{run.model} v{run.version} (run {run.run_id}) is now the active {run.model} model; the next "
          f"`python cli.py score --model {run.model}` scores with it")
    return 0


WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def _window(text: str) -> int:
    """'14d' -> seconds; units s, m, h, d, w (a bare number is seconds); positive, at most the
    funnels' MAX_WINDOW_S."""
    from analytics.funnels import MAX_WINDOW_DAYS, MAX_WINDOW_S

    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text, flags=re.ASCII)
    if not match:
        raise argparse.ArgumentTypeError(f"not a window like 30m, 12h, 14d or 2w: {text!r}")
    seconds = int(match.group(1)) * WINDOW_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    if seconds > MAX_WINDOW_S:
        raise argparse.ArgumentTypeError(f"at most {MAX_WINDOW_DAYS}d (five years): {text!r}")
    return seconds


def _exclusion(text: str):
    from analytics.funnels import Exclusion

    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdecimal() or not parts[2].isdecimal():
        raise argparse.ArgumentTypeError(f"not EVENT:FROM_STEP:TO_STEP (0-based steps): {text!r}")
    return Exclusion(event=parts[0], from_step=int(parts[1]), to_step=int(parts[2]))


def _report_range(engine, args: argparse.Namespace, *, default_days: int | None, span=None):
    """The report's DateRange: --from/--to, else the data's span (or its last ``default_days``); ``span``
    is the data's span when the caller has read it already.

    A --from before the data's first day or a --to after its last is moved onto it, with a note on
    stderr: the days outside hold nothing, and a typo (1026 for 2026) must not cost memory and time
    for empty rows. A range wholly outside the data is an error, so a cron job notices stale data.
    """
    from analytics.events import compute_data_span
    from analytics.periods import DateRange

    if span is None:
        span = compute_data_span(engine)
    if span is None:
        raise TraderLensError("the database holds no events yet: seed or import data first")
    start, end = args.date_from, args.date_to
    if start is not None and end is not None and end < start:
        raise TraderLensError(f"--to {end} is before --from {start}")
    if start is not None and start > span.end:
        raise TraderLensError(f"--from {start} is after the data ends ({span.end}); nothing to report")
    if end is not None and end < span.start:
        raise TraderLensError(f"--to {end} is before the data begins ({span.start}); nothing to report")
    if start is not None and start < span.start:
        _note(f"--from {start} is before the data begins; using {span.start}")
        start = span.start
    if end is not None and end > span.end:
        _note(f"--to {end} is after the data ends; using {span.end}")
        end = span.end
    end = end or span.end
    start = start or (span.start if default_days is None else end - timedelta(days=default_days - 1))
    return DateRange(start, end)


def _note(text: str) -> None:
    """One line on stderr that does not change the exit status (stdout stays the records)."""
    print(f"note: {text}", file=sys.stderr)


def _check_events(engine, names) -> None:
    """UnknownEvent (exit 1, listing the database's events) for a name no event carries: a report
    on a misspelt event would be all zeros and exit 0."""
    from analytics.events import check_event_names

    check_event_names(engine, names)


def _trader_filter(args: argparse.Namespace):
    from analytics.filters import TraderFilter

    return TraderFilter(include_test=args.include_test)


def _emit(records: list[dict], fmt: str) -> None:
    """Print records as a JSON list or as CSV with a header; missing numbers become null/empty. CSV text
    cells go through analytics.export.neutralise_cell, as the app's downloads do: an event or affiliate
    named ``=HYPERLINK(...)`` must not run as a formula in the spreadsheet the report is opened in."""
    from analytics.export import neutralise_cell

    clean = [{k: _plain(v) for k, v in r.items()} for r in records]
    if fmt == "json":
        print(json.dumps(clean, indent=1, default=str))
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if clean:
            writer.writerow(clean[0].keys())
        for r in clean:
            # A list (retention's values) is one cell joined with "|"; a missing entry stays empty.
            cells = ["|".join("" if x is None else str(x) for x in v) if isinstance(v, list) else v for v in r.values()]
            writer.writerow(["" if v is None else neutralise_cell(v) for v in cells])
    sys.stdout.flush()  # a reader that went away shows here, inside main(), not at interpreter exit


def _plain(value):
    """JSON-safe scalars: numpy numbers to Python, NaN/NaT to None, dates to ISO strings."""
    import math

    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "isoformat"):
        if getattr(value, "hour", 0) == 0 and getattr(value, "minute", 0) == 0 and hasattr(value, "date"):
            return value.date().isoformat()
        return value.isoformat()
    return value


def cmd_report_funnel(args: argparse.Namespace) -> int:
    from analytics.funnels import FunnelSpec, compute_funnel, validate_spec

    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    breakdown, kind = args.breakdown, "trader"
    if breakdown and breakdown.startswith(("prop:", "property:")):
        breakdown, kind = breakdown.split(":", 1)[1], "event"
    spec = FunnelSpec(steps=steps, window_s=args.window, order=args.order, exclusions=tuple(args.exclude or ()),
                      breakdown=breakdown, breakdown_kind=kind, attribution=args.attribution)
    validate_spec(spec)  # before opening the database: a malformed funnel needs no query to refuse
    engine = _engine()
    _check_events(engine, [*spec.steps, *(ex.event for ex in spec.exclusions)])
    result = compute_funnel(engine, spec, date_range=_report_range(engine, args, default_days=None),
                            trader_filter=_trader_filter(args))
    fields = ["step", "event", "count", "conversion_rate", "average_time_to_convert_s", "median_time_to_convert_s"]
    if breakdown:
        fields.append("breakdown_value")
    _emit(result.steps[fields].to_dict("records"), args.format)
    return 0


def cmd_report_retention(args: argparse.Namespace) -> int:
    from analytics.cohorts import RetentionSpec, compute_retention
    from analytics.events import compute_data_span

    engine = _engine()
    _check_events(engine, [args.start_event, args.return_event])
    spec = RetentionSpec(start_event=args.start_event, return_event=args.return_event, period=args.period,
                         intervals=args.intervals, mode=args.mode.replace("-", "_"), cumulative=args.cumulative,
                         week_start=args.week_start)
    span = compute_data_span(engine)  # read once: the range and the periods that have not happened yet
    date_range = _report_range(engine, args, default_days=None, span=span)
    # Without --from the table is --intervals cohorts ending with --to's period (the range's start is unused).
    result = compute_retention(engine, spec, date_from=date_range.start if args.date_from else None,
                               date_to=date_range.end, trader_filter=_trader_filter(args), data_end=span.end)
    _emit(result.records(), args.format)
    return 0


def cmd_report_lifecycle(args: argparse.Namespace) -> int:
    from analytics.lifecycle import compute_active, compute_lifecycle, compute_quick_ratios

    engine = _engine()
    _check_events(engine, [args.event])
    date_range = _report_range(engine, args, default_days=None)
    frame = compute_lifecycle(engine, event=args.event, period=args.period, date_from=date_range.start,
                              date_to=date_range.end, new_basis=args.new_basis, week_start=args.week_start,
                              trader_filter=_trader_filter(args))
    frame = frame.assign(active=compute_active(frame), quick_ratio=compute_quick_ratios(frame))
    _emit(frame[["period_start", "new", "returning", "resurrecting", "dormant", "active", "quick_ratio"]]
          .to_dict("records"), args.format)
    return 0


def cmd_report_kpis(args: argparse.Namespace) -> int:
    from analytics.kpis import compute_kpis

    engine = _engine()
    date_range = _report_range(engine, args, default_days=30)
    kpis = compute_kpis(engine, date_range=date_range, trader_filter=_trader_filter(args))
    _emit([{"key": k.key, "label": k.label, "value": k.value, "previous": k.previous, "change": k.change,
            "unit": k.unit, "from": date_range.start.isoformat(), "to": date_range.end.isoformat(),
            "definition": k.definition} for k in kpis], args.format)
    return 0


def _add_report_parsers(sub) -> None:
    report = sub.add_parser("report", help="funnel, retention, lifecycle and KPI reports as JSON or CSV")
    kinds = report.add_subparsers(dest="report", required=True)

    def common(p: argparse.ArgumentParser, *, dates_required: bool = False) -> None:
        p.add_argument("--from", dest="date_from", type=_date, required=dates_required,
                       help="first day (reporting time zone)")
        p.add_argument("--to", dest="date_to", type=_date, required=dates_required,
                       help="last day, inclusive (default: the newest day with data)")
        p.add_argument("--format", choices=("json", "csv"), default="json")
        p.add_argument("--include-test", action="store_true", help="count test accounts too")

    funnel = kinds.add_parser("funnel", help="conversion per step")
    funnel.add_argument("--steps", required=True, help='comma-separated event names, e.g. "registered,ftd,trade"')
    funnel.add_argument("--window", type=_window, default=14 * 86_400, help="conversion window: 30m, 12h, 14d, 2w")
    funnel.add_argument("--order", choices=("ordered", "strict", "unordered"), default="ordered")
    funnel.add_argument("--exclude", type=_exclusion, action="append", metavar="EVENT:FROM_STEP:TO_STEP",
                        help="exclusion between 0-based steps; repeatable")
    funnel.add_argument("--breakdown", help="trader attribute (country, acquisition_channel, platform, ...) "
                                            "or prop:KEY for an event property")
    funnel.add_argument("--attribution", choices=("first_touch", "last_touch"), default="first_touch")
    common(funnel)
    funnel.set_defaults(func=cmd_report_funnel)

    retention = kinds.add_parser("retention", help="retention matrix by cohort")
    retention.add_argument("--start-event", required=True)
    retention.add_argument("--return-event", required=True)
    retention.add_argument("--period", choices=("day", "week", "month"), required=True)
    retention.add_argument("--intervals", type=_intervals, default=8,
                           help="columns: period 0 (the cohort) and the next ones (default 8)")
    retention.add_argument("--mode", choices=("recurring", "first-time"), default="recurring")
    retention.add_argument("--cumulative", action="store_true")
    retention.add_argument("--week-start", choices=("monday", "sunday"), default="monday")
    common(retention)
    retention.set_defaults(func=cmd_report_retention)

    lifecycle = kinds.add_parser("lifecycle", help="new / returning / resurrecting / dormant per period")
    lifecycle.add_argument("--event", required=True)
    lifecycle.add_argument("--period", choices=("day", "week", "month"), required=True)
    lifecycle.add_argument("--new-basis", choices=("first-activity", "registration"), default="first-activity")
    lifecycle.add_argument("--week-start", choices=("monday", "sunday"), default="monday")
    common(lifecycle, dates_required=True)
    lifecycle.set_defaults(func=cmd_report_lifecycle)

    kpis = kinds.add_parser("kpis", help="KPIs with the previous equal period (default: the last 30 days)")
    common(kpis)
    kpis.set_defaults(func=cmd_report_kpis)


def _date(text: str) -> date:
    """YYYY-MM-DD between analytics.periods' EARLIEST_DAY and LATEST_DAY: a day or a month added to a
    date near Python's limits (9999-12-31) overflows, and no broker's data lies outside them."""
    from analytics.periods import EARLIEST_DAY, LATEST_DAY

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise argparse.ArgumentTypeError(f"not between {EARLIEST_DAY} and {LATEST_DAY}: {text!r}")
    return day


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _intervals(text: str) -> int:
    """A positive whole number up to the retention matrix's MAX_INTERVALS."""
    from analytics.cohorts import MAX_INTERVALS

    value = _positive(text)
    if value > MAX_INTERVALS:
        raise argparse.ArgumentTypeError(f"at most {MAX_INTERVALS}: {text!r}")
    return value


def _data_tables():
    from connectors.schema import DATA_TABLES

    return DATA_TABLES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cli.py", description="TraderLens command line")
    sub = parser.add_subparsers(dest="command", required=True)

    def simulation_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--traders", type=_positive, default=20_000, help="trader records (default 20000)")
        p.add_argument("--days", type=_positive, default=548, help="simulated days (default 548, 18 months)")
        p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
        p.add_argument("--end", type=_date, default=None, help="last day, exclusive (default: today, UTC)")

    seed = sub.add_parser("seed", help="fill the database from the broker simulator")
    simulation_options(seed)
    seed.add_argument("--replace", action="store_true", help="delete existing data first")
    seed.set_defaults(func=cmd_seed)

    setup = sub.add_parser("setup", help="migrate, and seed the demo into an empty embedded database")
    simulation_options(setup)
    setup.set_defaults(func=cmd_setup)

    serve = sub.add_parser("serve", help="setup, warm up and serve the app; other options go to streamlit run",
                           epilog="example: python cli.py serve --server.port 8502")
    simulation_options(serve)
    serve.add_argument("--no-warm-pages", action="store_true",
                       help="do not compute the analytics pages' default views at start")
    serve.set_defaults(func=cmd_serve)

    from connectors.importers import KINDS

    imp = sub.add_parser("import", help="load a broker export (CSV, MT4/MT5 report)")
    imp.add_argument("path")
    imp.add_argument("--kind", default="auto", choices=("auto", *KINDS))
    imp.add_argument("--trader", default=None, help="client external id a terminal report belongs to")
    imp.add_argument("--create-missing-traders", action="store_true",
                     help="create minimal trader records for unknown trader ids instead of failing")
    imp.add_argument("--server-utc-offset", type=float, default=0.0, metavar="HOURS",
                     help="UTC offset of an MT4/MT5 server clock (terminal reports carry no zone; default 0)")
    imp.set_defaults(func=cmd_import)

    changes = sub.add_parser("changes", help="what re-imports changed in rows already loaded (old -> new, who, "
                                             "which file), newest first")
    changes.add_argument("--external-id", default=None, help="one row's external id")
    changes.add_argument("--import", dest="import_id", type=int, default=None, metavar="N",
                         help="one import (its number from the import summary or the Data page)")
    changes.add_argument("--table", default=None, choices=[t.name for t in _data_tables()])
    changes.add_argument("--limit", type=_positive, default=1000, help="at most this many changes (default 1000)")
    changes.add_argument("--format", choices=("json", "csv"), default="json")
    changes.set_defaults(func=cmd_changes)

    info = sub.add_parser("info", help="row counts and the newest timestamp per table")
    info.set_defaults(func=cmd_info)

    features = sub.add_parser("features", help="every trader's point-in-time features as CSV")
    features.add_argument("--as-of", type=_date, default=None,
                          help="use only data before the start of this day (default: the day after the newest data)")
    features.add_argument("--out", required=True, help="CSV file to write ('-': standard output)")
    features.set_defaults(func=cmd_features)

    segment = sub.add_parser("segment", help="behavioural clusters of the traders, with their diagnostics")
    segment.add_argument("--k", type=_positive, required=True, help="number of clusters (ignored by hdbscan)")
    segment.add_argument("--algorithm", choices=("kmeans", "gmm", "hdbscan"), default="kmeans")
    segment.add_argument("--features", type=_feature_list, default="default",
                         help="'default' or a comma-separated list of feature names (cli.py features lists them)")
    segment.add_argument("--as-of", type=_date, default=None, help="use only data before the start of this day")
    segment.add_argument("--seed", type=int, default=0, help="random seed (same inputs and seed: same clusters)")
    segment.add_argument("--out", default=None,
                         help="CSV of trader_external_id,cluster,cluster_name ('-': standard output)")
    segment.add_argument("--save", default=None, metavar="NAME",
                         help="save as a clustering run (ids continue the last run of that name)")
    segment.set_defaults(func=cmd_segment)

    segments = sub.add_parser("segments", help="saved segments: list, refresh their members, export them")
    segment_commands = segments.add_subparsers(dest="segments_command", required=True)
    listing = segment_commands.add_parser("list", help="saved segments with their size and last refresh")
    listing.add_argument("--archived", action="store_true", help="include archived segments")
    listing.add_argument("--format", choices=("json", "csv"), default="json")
    listing.set_defaults(func=cmd_segments_list)
    refresh = segment_commands.add_parser(
        "refresh", help="recompute members (all segments, or the named ones) and record who entered and left; "
                        "for cron")
    refresh.add_argument("names", nargs="*", metavar="NAME")
    refresh.set_defaults(func=cmd_segments_refresh)
    export = segment_commands.add_parser("export", help="a segment's current members as CSV")
    export.add_argument("name", metavar="NAME")
    export.add_argument("--out", required=True, help="CSV file to write ('-': standard output)")
    export.set_defaults(func=cmd_segments_export)

    models_help = "churn, deposit or ftd"
    train = sub.add_parser("train", help="train a churn, deposit or FTD model on past snapshots (out-of-time "
                                         "validation, calibration, baseline) and save it")
    train.add_argument("--model", required=True, help=models_help)
    train.add_argument("--as-of", type=_date, default=None,
                       help="use only data before the start of this day (default: the day after the newest data)")
    train.add_argument("--snapshots", type=_positive, default=4, help="training snapshots (default 4)")
    train.set_defaults(func=cmd_train)

    score = sub.add_parser("score", help="score every trader of a model's population with the active model and "
                                         "store the scores with their reasons")
    score.add_argument("--model", required=True, help=models_help)
    score.add_argument("--as-of", type=_date, default=None,
                       help="score as of the start of this day (default: the day after the newest data)")
    score.add_argument("--out", default=None,
                       help="CSV of trader_external_id, probability, band, decile and the top reasons ('-': stdout)")
    score.add_argument("--reasons", type=_positive, default=3, help="reasons per trader in --out (default 3)")
    score.add_argument("--device", choices=("cpu", "cuda"), default=None,
                       help="compute the SHAP contributions on this device (cuda: XGBoost's GPU build)")
    score.set_defaults(func=cmd_score)

    models = sub.add_parser("models", help="trained models: list them, promote a candidate")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    mlist = model_commands.add_parser("list", help="every trained model with its out-of-time figures")
    mlist.add_argument("--model", default=None, choices=("churn", "deposit", "ftd"))
    mlist.add_argument("--format", choices=("json", "csv"), default="json")
    mlist.set_defaults(func=cmd_models_list)
    mpromote = model_commands.add_parser("promote", help="make a candidate the active model of its kind")
    mpromote.add_argument("run_id", type=_positive, metavar="RUN_ID")
    mpromote.set_defaults(func=cmd_models_promote)

    _add_report_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `serve` passes the options it does not know on to `streamlit run` (--server.port 8502, ...).
    args, unknown = parser.parse_known_args(argv)
    if args.command == "serve":
        args.streamlit_options = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    from connectors.database import set_wait_notice

    set_wait_notice(lambda text: print(text, file=sys.stderr, flush=True))
    try:
        return args.func(args)
    except TraderLensError as exc:
        from connectors.database import scrub

        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was committed by the unfinished step", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`cli.py report ... | head`): not an error of ours. Python would try
        # to flush stdout again at exit and print a second complaint; point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE
    except Exception as exc:
        if os.environ.get("TRADERLENS_DEBUG"):
            raise
        from connectors.database import scrub

        first_line = scrub((str(exc).strip().splitlines() or [""])[0])  # a library may echo the URL
        print(f"error: unexpected {type(exc).__name__}: {first_line} (TRADERLENS_DEBUG=1 shows the trace)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
