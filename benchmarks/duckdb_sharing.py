"""What sharing the embedded DuckDB file costs a page run, and how long a writer waits for the app.

    python benchmarks/duckdb_sharing.py [--rounds 15]

On the demo-size database ``data/bench/demo.duckdb`` (``cli.py seed --traders 20000 --end
2026-12-01`` when missing; TRADERLENS_BENCH_DEMO_DB overrides it), the Overview's default reads
(the data span and the KPIs of the last 90 days) run in interleaved rounds three ways:

- the old engine (a QueuePool engine that keeps the file open);
- the read-only engine of connectors.database while the file is still open (a page run less than
  IDLE_RELEASE_S after the last one);
- the read-only engine after the file was let go (a page run after a pause: DuckDB opens the file
  again and reads from a cold buffer).

Wall time and CPU time (every thread of this process) per run; on a busy machine the CPU time is the
steadier figure. Then, with this process holding the file open and idle, a writer in another
process (``cli.py import`` of a one-trader CSV) is timed from start to exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO_DB = Path(os.environ.get("TRADERLENS_BENCH_DEMO_DB", ROOT / "data" / "bench" / "demo.duckdb"))
SEED_ARGS = ["--traders", "20000", "--end", "2026-12-01"]


def ensure_demo_database() -> str:
    url = f"duckdb:///{DEMO_DB}"
    if not DEMO_DB.exists():
        DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
        print(f"seeding {DEMO_DB} ({' '.join(SEED_ARGS)}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "cli.py", "seed", *SEED_ARGS], cwd=ROOT, check=True,
                       env={**os.environ, "TRADERLENS_DB_URL": url})
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import sqlalchemy as sa

    from analytics.events import compute_data_span
    from analytics.kpis import compute_kpis
    from analytics.periods import DateRange
    from connectors import database

    tmp = tempfile.TemporaryDirectory()
    copy = Path(tmp.name) / "demo.duckdb"  # the import below must not change the shared demo file
    shutil.copyfile(ensure_demo_database().removeprefix("duckdb:///"), copy)
    url = f"duckdb:///{copy}"
    database.prepare(url)

    def page(engine: sa.Engine) -> None:
        span = compute_data_span(engine)
        compute_kpis(engine, date_range=DateRange(span.end - timedelta(days=89), span.end))

    runs: dict[str, tuple[list[float], list[float]]] = {
        name: ([], []) for name in ("old engine, file kept open", "read-only, file still open",
                                    "read-only, file opened again")}

    def timed(name: str, engine: sa.Engine) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        page(engine)
        runs[name][0].append(time.perf_counter() - wall)
        runs[name][1].append(time.process_time() - cpu)

    old = sa.create_engine(url, connect_args={"read_only": True})
    reader = database.get_engine(url, read_only=True)
    idle, kept = 1.0, database.IDLE_RELEASE_S
    database.IDLE_RELEASE_S = idle  # let go between the rounds' runs without waiting a minute
    for _ in range(args.rounds):
        page(old)
        timed("old engine, file kept open", old)
        old.dispose()
        page(reader)
        time.sleep(idle / 3)
        timed("read-only, file still open", reader)
        time.sleep(idle + 0.3)
        timed("read-only, file opened again", reader)
        time.sleep(idle + 0.3)
    load = os.getloadavg()[0]
    print(f"| Overview's default reads ({args.rounds} rounds, load {load:.1f}) | wall median | CPU median | CPU min |")
    print("|---|---|---|---|")
    for name, (wall, cpu) in runs.items():
        print(f"| {name} | {statistics.median(wall) * 1000:.0f} ms | {statistics.median(cpu) * 1000:.0f} ms "
              f"| {min(cpu) * 1000:.0f} ms |")

    database.IDLE_RELEASE_S = kept  # as in the app: only the writer's mark makes this idle reader let go
    page(reader)  # this process holds the file open, idle, as the app does between page runs
    csv = Path(tmp.name) / "traders.csv"
    csv.write_text("external_id,registered_at,country,email\nBENCH1,2026-11-30T10:00:00Z,DE,b@example.com\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "cli.py", "import", str(csv)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TRADERLENS_DB_URL": url}, check=False)
    took = time.perf_counter() - started
    database.dispose_engines()
    tmp.cleanup()
    print(f"cli.py import beside an idle reader: exit {done.returncode} in {took:.1f} s; "
          f"stderr: {done.stderr.strip() or '(nothing)'}")


if __name__ == "__main__":
    main()
