"""TraderLens command line: the app's capabilities for cron jobs and scripts.

    python cli.py setup                 bring the schema up to date; seed the demo on first use
    python cli.py seed [--traders N] [--days D] [--seed S] [--end DATE] [--replace]
    python cli.py import PATH [--kind K] [--trader EXTERNAL_ID] [--create-missing-traders]
                              [--server-utc-offset HOURS]
    python cli.py info

Every command reads TRADERLENS_DB_URL (default: the embedded DuckDB file data/traderlens.duckdb),
exits 0 on success and non-zero with a one-line reason on failure. Set TRADERLENS_DEBUG=1 to see
the stack trace of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
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


def _engine():
    """The configured engine with the schema brought up to date (every command starts here)."""
    from connectors.database import get_engine, upgrade_schema

    engine = get_engine()
    upgrade_schema(engine)
    return engine


def _config(args: argparse.Namespace):
    from connectors.simulator import SimulationConfig

    return SimulationConfig(traders=args.traders, days=args.days, seed=args.seed, end=args.end)


def cmd_seed(args: argparse.Namespace) -> int:
    from connectors.simulator import seed_database

    engine = _engine()
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

    engine = _engine()
    with engine.connect() as conn:
        traders = conn.execute(sa.select(sa.func.count()).select_from(schema.traders)).scalar_one()
    demo_allowed = engine.dialect.name == "duckdb" or os.environ.get("TRADERLENS_SEED_DEMO") == "1"
    if traders:
        print(f"{redact(str(engine.url))}: schema up to date, {traders:,} traders.")
    elif demo_allowed:
        print("First start: creating the demo broker (20,000 simulated traders over 18 months).",
              file=sys.stderr)
        summary = seed_database(engine, _config(args), progress=_progress_bar())
        print(f"Demo database ready in {summary.simulate_s + summary.write_s:.0f}s.")
    else:
        print(f"{redact(str(engine.url))} is empty. Import your data (python cli.py import ...) or "
              "seed a demo with TRADERLENS_SEED_DEMO=1.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from connectors.importers import import_file

    path = Path(args.path)
    if not path.is_file():
        raise TraderLensError(f"{path}: no such file")
    result = import_file(_engine(), path, kind=args.kind, trader=args.trader,
                         create_missing_traders=args.create_missing_traders,
                         server_utc_offset_hours=args.server_utc_offset)
    written = ", ".join(f"{table} {n:,}" for table, n in result.inserted.items() if n) or "nothing new"
    print(f"{result.file} ({result.kind}): read {result.rows_read:,} rows; wrote {written}; "
          f"skipped {result.skipped:,} already present")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from connectors import schema
    from connectors.database import redact, schema_revision

    engine = _engine()
    print(f"database  {redact(str(engine.url))} (schema revision {schema_revision(engine)})")
    print(f"{'table':<15}{'rows':>12}  newest")
    with engine.connect() as conn:
        for table in schema.DATA_TABLES:
            col = table.c[schema.TIME_COLUMNS[table.name]]
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(col))).one()
            print(f"{table.name:<15}{count:>12,}  {newest or '-'}")
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


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

    info = sub.add_parser("info", help="row counts and the newest timestamp per table")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TraderLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was committed by the unfinished step", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("TRADERLENS_DEBUG"):
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: unexpected {type(exc).__name__}: {first_line} (TRADERLENS_DEBUG=1 shows the trace)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
