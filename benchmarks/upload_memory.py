"""Peak memory of a large file import, on DuckDB and PostgreSQL.

    python benchmarks/upload_memory.py                                  # 200 MB transactions CSV
    python benchmarks/upload_memory.py --mb 200 --page                  # and through the Data page
    python benchmarks/upload_memory.py --mb 50 --backends duckdb --kind trades
    python benchmarks/upload_memory.py --tree /tmp/traderlens-before    # the same run on another checkout

Writes a realistic payment ledger (``transactions``, or ``trades``) of about ``--mb`` megabytes for
50,000 traders who each hold one account (seeded once per backend by importing a traders and an
accounts CSV, not measured), or an MT5 HTML report (``--kind mt5-report``). Each measured import
is a fresh child process that connects, then calls ``connectors.importers.import_file`` on the
file as ``cli.py import`` does; with ``--page`` another child uploads it through
``pages/data.py`` (AppTest, on DuckDB). The child reports its resident memory before the import
(baseline), the peak while importing (VmHWM; for PostgreSQL the client's, the server's own
memory is not counted) and what is left after the import has returned and the garbage collector
has run. The comparison row reads the same file once with ``pyarrow.csv.read_csv`` (no
validation, no database) in its own child. Prints a Markdown table; every run goes to
benchmarks/results/upload_memory.json (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import simulator_bench  # run as benchmarks/upload_memory.py: its folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "upload_memory.json"
PG_DATABASE = "traderlens_bench_upload"
TRADERS = 50_000
START = datetime(2024, 1, 1)
SYMBOLS = (("EURUSD", 1.08), ("XAUUSD", 2030.0), ("US500", 5100.0), ("BTCUSD", 64000.0))

CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024

url, path, mode, kind = sys.argv[2:6]
from connectors.database import get_engine, upgrade_schema
from connectors.importers import import_file
import pyarrow.csv
if mode != "pyarrow":
    engine = get_engine(url)
    upgrade_schema(engine)
gc.collect()
baseline = status("VmRSS")
t0 = time.perf_counter()
if mode == "pyarrow":
    result = pyarrow.csv.read_csv(path)
    rows = result.num_rows
elif mode == "page":
    # The Data page in-process (AppTest): upload (Streamlit keeps the bytes), preview, Import.
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(sys.argv[1] + "/pages/data.py", default_timeout=3600).run()
    gc.collect()
    baseline = status("VmRSS")
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        at.file_uploader(key="data.upload").set_value((path.rsplit("/", 1)[-1], f.read(), "text/csv"))
    at.selectbox(key="data.kind").select(kind)
    at.run()
    at.button(key="data.import").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    result = at.success[0].value
    rows = int(result.split()[1].replace(",", ""))
else:
    result = import_file(engine, path, kind=kind, create_missing_traders=True)
    rows = result.rows_read
seconds = time.perf_counter() - t0
peak = status("VmHWM")
del result
gc.collect()
print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "after_mb": status("VmRSS"),
                  "seconds": round(seconds, 1), "rows": rows}))
"""


def _time(rng: random.Random) -> str:
    return (START + timedelta(seconds=rng.randrange(0, 365 * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_files(folder: Path, kind: str, megabytes: int) -> dict[str, Path]:
    """traders.csv, accounts.csv and ``kind``.csv of about ``megabytes`` MB (kept between runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    paths = {name: folder / f"{name}.csv" for name in ("traders", "accounts")}
    if not paths["traders"].exists():
        with paths["traders"].open("w") as f:
            f.write("external_id,registered_at,country,email,acquisition_channel\n")
            for i in range(1, TRADERS + 1):
                f.write(f"T-{i:06d},{_time(rng)},{rng.choice(('DE', 'GB', 'ZA', 'AE', 'CY'))},"
                        f"client{i}@example.com,{rng.choice(('organic', 'paid_search', 'affiliate'))}\n")
        with paths["accounts"].open("w") as f:
            f.write("external_id,trader_external_id,platform,login,currency,leverage,opened_at,is_demo\n")
            for i in range(1, TRADERS + 1):
                f.write(f"A-{i:06d},T-{i:06d},MT5,{7_000_000 + i},USD,100,2023-12-01T00:00:00Z,false\n")
    if kind == "mt5-report":
        paths[kind] = folder / f"mt5_report_{megabytes}mb.html"
        if not paths[kind].exists():
            _write_mt5_report(paths[kind], megabytes)
        return paths
    target = folder / f"{kind}_{megabytes}mb.csv"
    paths[kind] = target
    if target.exists():
        return paths
    limit = megabytes * 1_000_000
    with target.open("w") as f:
        if kind == "transactions":
            f.write("external_id,trader_external_id,kind,status,amount,currency,amount_usd,created_at,"
                    "method,psp,account_external_id,comment\n")
        else:
            f.write("external_id,trader_external_id,symbol,side,lots,opened_at,closed_at,open_price,"
                    "close_price,profit_usd,account_external_id,commission_usd,swap_usd,close_reason,channel\n")
        written, n = 0, 0
        while written < limit:
            n += 1
            t = rng.randrange(1, TRADERS + 1)
            account = f"A-{t:06d}" if rng.random() < 0.7 else ""
            if kind == "transactions":
                txn = rng.choices(("deposit", "withdrawal", "bonus", "fee", "ib_commission"), (50, 25, 8, 12, 5))[0]
                amount = round(rng.lognormvariate(5.5, 1.0), 2) * (-1 if txn == "fee" else 1)
                comment = rng.choice(("", "", "first deposit", "requested by client", "inactivity fee"))
                line = (f"TX-{n:010d},T-{t:06d},{txn},{rng.choice(('approved', 'approved', 'declined', 'pending'))},"
                        f"{amount:.2f},USD,{amount:.2f},{_time(rng)},{rng.choice(('card', 'bank_wire', 'skrill'))},"
                        f"{rng.choice(('Praxis', 'Ozow', 'Skrill'))},{account},{comment}\n")
            else:
                opened = START + timedelta(seconds=rng.randrange(0, 365 * 86400))
                closed = opened + timedelta(seconds=rng.randrange(60, 3 * 86400))
                symbol, price = rng.choice(SYMBOLS)
                lots = rng.choice((0.01, 0.1, 0.5, 1, 2))
                line = (f"TR-{n:010d},T-{t:06d},{symbol},{rng.choice(('buy', 'sell'))},{lots},"
                        f"{opened:%Y-%m-%dT%H:%M:%SZ},{closed:%Y-%m-%dT%H:%M:%SZ},{price:.5f},{price * 1.001:.5f},"
                        f"{rng.gauss(0, 80):.2f},{account},{-rng.choice((0, 3.5, 7)):.2f},{rng.gauss(-1, 2):.2f},"
                        f"{rng.choice(('client', 'sl', 'tp'))},{rng.choice(('desktop', 'mobile', 'web'))}\n")
            f.write(line)
            written += len(line)
    return paths


def _write_mt5_report(target: Path, megabytes: int) -> None:
    """The MT5 report fixture (UTF-16, as the terminal writes it) with AUDUSD in/out deal pairs
    added at the top of its Deals section until the file has about ``megabytes`` MB."""
    text = (ROOT / "tests" / "fixtures" / "mt5" / "ReportHistory-70011987.html").read_bytes().decode("utf-16")
    cut = text.index("</tr>", text.index("<b>Comment</b>", text.index("<b>Deals</b>"))) + len("</tr>\n")
    rows, n, size = [], 0, len(text) * 2
    while size < megabytes * 1_000_000:
        moment = datetime(2023, 1, 1) + timedelta(minutes=5 * n)
        for side, direction, price in (("buy", "in", "0.66010"), ("sell", "out", "0.66110")):
            n += 1
            row = (f'<tr bgcolor="#FFFFFF" align="right"><td>{moment:%Y.%m.%d %H:%M:%S}</td><td>{9_000_000 + n}</td>'
                   f"<td>AUDUSD</td><td>{side}</td><td>{direction}</td><td>0.10</td><td>{price}</td>"
                   f"<td>{9_500_000 + n}</td><td>-0.70</td><td>0.00</td><td>0.00</td>"
                   f"<td>{'10.00' if direction == 'out' else '0.00'}</td><td>1 000.00</td><td></td></tr>\n")
            rows.append(row)
            size += len(row) * 2
    target.write_bytes((text[:cut] + "".join(rows) + text[cut:]).encode("utf-16"))


def fresh_database(backend: str, folder: Path) -> str:
    return simulator_bench.fresh_database(backend, folder, PG_DATABASE)


def run_child(tree: Path, url: str, path: Path, mode: str, kind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), url, str(path), mode, kind],
                         capture_output=True, text=True, cwd=tree, check=False,
                         env={**os.environ, "TRADERLENS_DB_URL": url})
    if out.returncode != 0:
        raise SystemExit(f"child failed ({mode} {path.name}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the measured CSV (default 200)")
    parser.add_argument("--kind", choices=("transactions", "trades", "mt5-report"), default="transactions",
                        help="mt5-report: an MT5 HTML report, read whole")
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose code is measured")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "bench" / "upload",
                        help="folder for the generated files and the DuckDB database")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the runs are written")
    parser.add_argument("--no-pyarrow", action="store_true", help="skip the pyarrow.csv.read_csv row")
    parser.add_argument("--page", action="store_true",
                        help="also upload and import the file through the Data page (AppTest, in-process)")
    args = parser.parse_args()

    files = write_files(args.data, args.kind, args.mb)
    measured = files[args.kind]
    size_mb = measured.stat().st_size / 1e6
    tree = args.tree.resolve()
    runs: list[dict] = []
    if not args.no_pyarrow and args.kind != "mt5-report":
        runs.append({"what": "pyarrow.csv.read_csv", "backend": "-",
                     **run_child(tree, "-", measured, "pyarrow", args.kind)})
    for backend in args.backends.split(","):
        url = fresh_database(backend, args.data)
        for name in ("traders", "accounts"):
            run_child(tree, url, files[name], "import", name)
        runs.append({"what": "import_file", "backend": backend,
                     **run_child(tree, url, measured, "import", args.kind)})
        print(f"{runs[-1]}", file=sys.stderr)
        if args.page and backend == "duckdb":  # the app's own database; the page imports in-process
            url = fresh_database(backend, args.data)
            for name in ("traders", "accounts"):
                run_child(tree, url, files[name], "import", name)
            runs.append({"what": "Data page upload + import", "backend": backend,
                         **run_child(tree, url, measured, "page", args.kind)})
            print(f"{runs[-1]}", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured_at": time.strftime("%Y-%m-%d %H:%M"), "tree": str(tree), "file": measured.name,
        "file_mb": round(size_mb, 1), "command": " ".join(sys.argv), "runs": runs}, indent=1))
    print(f"{measured.name}: {size_mb:.0f} MB, {runs[-1]['rows']:,} rows; code at {tree}")
    print("| what | backend | seconds | RSS before MB | peak RSS MB | peak growth MB | RSS after MB | left after MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['what']} | {r['backend']} | {r['seconds']} | {r['baseline_mb']:,} | {r['peak_mb']:,} | "
              f"{r['peak_mb'] - r['baseline_mb']:,} | {r['after_mb']:,} | {r['after_mb'] - r['baseline_mb']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
