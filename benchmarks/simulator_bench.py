"""How long seeding takes and how much memory it needs, on DuckDB and PostgreSQL.

    python benchmarks/simulator_bench.py                      # 20k x3 and 200k x3 on both backends
    python benchmarks/simulator_bench.py --sizes 20000 --runs 5 --backends duckdb
    python benchmarks/simulator_bench.py --sizes 20000 --tree /tmp/old --out /tmp/old.json  # another checkout

Each run is a fresh child process seeding an empty database (`seed_database` with the CLI's
defaults: 548 days, seed 7, a fixed end date), so its peak resident memory is its own. For
PostgreSQL the peak is the client's; the server's memory is not counted. Prints a Markdown table
of medians and writes every run to benchmarks/results/simulator.json (or ``--out``). CPU seconds
(every thread of the seeding process, not PostgreSQL's) are steadier than wall time on a busy
machine; compare two versions by alternating ``--tree`` runs in one window.

Targets (issue 2): 20,000 traders in at most 60 s; 200,000 traders in at most 10 minutes with peak
memory at most 6 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "simulator.json"
PG_ADMIN = os.environ.get("TRADERLENS_BENCH_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "traderlens_bench_seed"  # dropped and recreated for every run: no other benchmark's database
END = date(2026, 12, 1)


def child(url: str, traders: int, tree: Path | None) -> None:
    if tree is not None:
        sys.path.insert(0, str(tree))
    from connectors.database import get_engine
    from connectors.simulator import SimulationConfig, seed_database

    engine = get_engine(url)
    t0, cpu0 = time.perf_counter(), time.process_time()
    summary = seed_database(engine, SimulationConfig(traders=traders, end=END))
    seconds = time.perf_counter() - t0
    print(json.dumps({
        # CPU seconds of this process (every thread; not PostgreSQL's): steadier than wall time on a busy machine.
        "seconds": round(seconds, 2), "cpu_s": round(time.process_time() - cpu0, 2),
        "simulate_s": round(summary.simulate_s, 2),
        "write_s": round(summary.write_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rows": summary.rows,
    }))


def fresh_database(backend: str, tmp: Path, pg_database: str = PG_DATABASE) -> str:
    """The URL of an empty database: a new DuckDB file in ``tmp``, or ``pg_database`` dropped and
    created again on the PostgreSQL server of PG_ADMIN (benchmarks/upload_memory.py uses it too)."""
    if backend == "duckdb":
        path = tmp / "bench.duckdb"
        for suffix in ("", ".wal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return f"duckdb:///{path}"
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{pg_database}"'))
    admin.dispose()
    return sa.make_url(PG_ADMIN).set(database=pg_database).render_as_string(hide_password=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the runs (JSON)")
    parser.add_argument("--tree", type=Path, help="seed with the simulator of this checkout instead")
    parser.add_argument("--child", nargs=2, metavar=("URL", "TRADERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.tree)
        return 0

    tmp = ROOT / "data" / "bench"
    tmp.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for backend in args.backends.split(","):
            for i in range(args.runs):
                url = fresh_database(backend, tmp)
                tree = ["--tree", str(args.tree)] if args.tree else []
                out = subprocess.run([sys.executable, __file__, "--child", url, str(size), *tree],
                                     capture_output=True, text=True, cwd=ROOT, check=False)
                if out.returncode != 0:
                    print(out.stderr, file=sys.stderr)
                    return 1
                run = {"backend": backend, "traders": size, "run": i + 1, **json.loads(out.stdout.splitlines()[-1])}
                runs.append(run)
                print(f"{backend:9} {size:>7} run {i + 1}: {run['seconds']:7.1f}s, cpu {run['cpu_s']:.1f}s "
                      f"(simulate {run['simulate_s']:.1f}s, write {run['write_s']:.1f}s), "
                      f"peak {run['peak_rss_mb']} MB", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
                                   "runs": runs}, indent=1))
    print("| backend | traders | runs | median seconds | median CPU s | median simulate s | median write s "
          "| max peak MB | rows |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sorted({r["traders"] for r in runs}):
        for backend in args.backends.split(","):
            sel = [r for r in runs if r["traders"] == size and r["backend"] == backend]
            if not sel:
                continue
            med = {k: statistics.median(r[k] for r in sel) for k in ("seconds", "cpu_s", "simulate_s", "write_s")}
            print(f"| {backend} | {size:,} | {len(sel)} | {med['seconds']:.1f} | {med['cpu_s']:.1f} | "
                  f"{med['simulate_s']:.1f} | "
                  f"{med['write_s']:.1f} | {max(r['peak_rss_mb'] for r in sel):,} | "
                  f"{sum(sel[0]['rows'].values()):,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
