"""CSV imports read in chunks: the stream reads a file as the whole text would be read, a bad row
in a later chunk is named by the same line as in a whole-file read and leaves the database as it
was (DuckDB and PostgreSQL), and an import's memory does not grow with the file."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import database, schema
from connectors.errors import ImportRejected
from connectors.importers import csv_tables, import_file, source

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "csv"


# ---- the stream against the whole text ------------------------------------------------------

def _whole(data: bytes) -> tuple:
    try:
        table = source.read_csv(source.decode_strict(data, "f.csv"), "f.csv")
    except ImportRejected as exc:
        return "refused", str(exc), exc.row
    return "read", table.header, table.records


def _streamed(path: Path) -> tuple:
    try:
        with source.CsvStream(path, "f.csv") as stream:
            header = stream.header()
            records = list(stream.records())
            assert stream.complete
    except ImportRejected as exc:
        return "refused", str(exc), exc.row
    return "read", header, records


PIECES = ["a", "b,c", ",", ";", "\t", "\n", "\r\n", "\r", '"', '"x\ny"', '""', "é", "ü,", " ", "1", "\n\n"]


def test_the_stream_reads_and_refuses_as_the_whole_text_does(tmp_path, monkeypatch):
    """Blocks of a few bytes cut lines, quoted cells, CRLF pairs and UTF-8 characters anywhere:
    header, records, line numbers and refusals (encoding, NUL, quoting) come out the same."""
    rng = random.Random(11)
    path = tmp_path / "f.csv"
    compared = 0
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 40)))
        data = text.encode(rng.choice(["utf-8", "utf-8", "utf-8-sig", "utf-16"]))
        damage = rng.random()
        at = rng.randrange(len(data) + 1)
        if damage < 0.15:
            data = data[:at] + b"\xff" + data[at:]  # an undecodable byte
        elif damage < 0.2:
            data = data[:at] + b"\x00" + data[at:]  # a NUL
        if not data.strip() or (source._bom(data)[0] is None and b"\x00" in data):
            continue  # UTF-16 without a BOM is recognised in the first 4000 bytes, not in 4
        monkeypatch.setattr(source, "BLOCK_BYTES", rng.choice([1, 2, 3, 5, 64]))
        monkeypatch.setattr(source, "SNIFF_BYTES", 4)  # a BOM fits; everything else comes in blocks
        path.write_bytes(data)
        assert _streamed(path) == _whole(data), data
        compared += 1
    assert compared > 2500


def test_a_problem_further_on_wins_as_in_a_whole_read(tmp_path, monkeypatch):
    """A bad value in row 2 waits for the rest of the file: an undecodable byte, a NUL or broken
    quoting in the last block is what a whole-file read names, so the stream names it too."""
    monkeypatch.setattr(source, "BLOCK_BYTES", 64)
    head = "trader_external_id,started_at,duration_s,surface\nT-1,2024-01-01,-5,web\n"
    good = "T-1,2024-01-02,5,web\n" * 50
    for tail, words, row in ((b"T-1,2024-01-03,5,w\xffb\n", "not UTF-8", 53),
                             (b"T-1,2024-01-03,5,\x00\n", "binary file", None),
                             (b'T-1,"2024-01-03,5,web\n', "not valid CSV", 53),
                             (b"", "duration_s must be 0 or more", 2)):
        path = tmp_path / "sessions.csv"
        path.write_bytes((head + good).encode() + tail)
        with pytest.raises(ImportRejected) as caught:
            import_file(sa.create_engine("sqlite://"), path, kind="sessions")  # refused before any database use
        assert words in str(caught.value) and caught.value.row == row


# ---- chunks against one whole chunk ---------------------------------------------------------

def _counts(engine: sa.Engine) -> dict[str, int]:
    """Rows per data table, in the import log and in the rollups (a refused import leaves all alike)."""
    with engine.connect() as conn:
        counts = database.table_counts(conn)
        counts["imports"] = conn.execute(sa.select(sa.func.count()).select_from(schema.imports)).scalar_one()
        counts["rollups"] = sum(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                                for t in schema.ROLLUP_TABLES)
    return counts


TXN_HEAD = ("external_id,trader_external_id,kind,status,amount,currency,amount_usd,created_at,account_external_id,"
            "comment\n")


def _ledger(rows: int, bad: dict[int, str] | None = None) -> str:
    """A transactions CSV of ``rows`` records for the fixture traders, with a blank line and a
    comment running over two lines now and then (so line and record numbers part); ``bad``
    replaces record i (0-based) with the given line."""
    lines = [TXN_HEAD]
    for i in range(rows):
        comment = '"first line\nsecond line"' if i % 7 == 3 else "plain"
        line = (f"P-{i},T-100{1 + i % 3},deposit,approved,{10 + i}.00,EUR,{11 + i}.00,"
                f"2024-02-{1 + i % 28:02d}T10:00:00Z,,{comment}\n")
        lines.append((bad or {}).get(i, line))
        if i % 11 == 5:
            lines.append("\n")
    return "".join(lines)


def _line_of(text: str, record: int) -> int:
    """The file line where data record ``record`` (0-based) starts, counted independently."""
    starts = [i + 1 for i, line in enumerate(text.split("\n")) if line.startswith("P-") or line.startswith("X-")]
    return starts[record]


@pytest.fixture
def loaded(engine):
    import_file(engine, FIXTURES / "traders.csv")
    import_file(engine, FIXTURES / "accounts.csv")
    return engine


BAD_LATER = [  # (record made bad, its line, column, words); CHUNK_ROWS is 10 below, so chunk 5+
    ("value", lambda i: f"X-{i},T-1001,deposit,approved,-5,EUR,-5,2024-02-01T10:00:00Z,,\n", "amount",
     "sign is in kind"),
    ("unknown-trader", lambda i: f"X-{i},T-4040,deposit,approved,5,EUR,5,2024-02-01T10:00:00Z,,\n",
     "trader_external_id", "unknown trader 'T-4040'"),
    ("someone-elses-account", lambda i: f"X-{i},T-1001,deposit,approved,5,EUR,5,2024-02-01T10:00:00Z,A-5003,\n",
     "account_external_id", "another trader"),
    ("conflicting-repeat", lambda i: "P-3,T-1001,deposit,approved,999.00,EUR,999.00,2024-02-04T10:00:00Z,,x\n",
     "external_id", "first at row"),
]


@pytest.mark.parametrize(("make", "column", "words"), [pytest.param(*case[1:], id=case[0]) for case in BAD_LATER])
def test_a_bad_row_in_a_later_chunk_is_named_as_in_one_chunk_and_changes_nothing(
        loaded, tmp_path, monkeypatch, make, column, words):
    bad_record = 57
    text = _ledger(70, {bad_record: make(bad_record)})
    path = tmp_path / "ledger.csv"
    path.write_text(text)
    before = _counts(loaded)
    errors = []
    for chunk_rows in (10, 1_000_000):
        monkeypatch.setattr(csv_tables, "CHUNK_ROWS", chunk_rows)
        with pytest.raises(ImportRejected) as caught:
            import_file(loaded, path, create_missing_traders=column != "trader_external_id")
        errors.append(str(caught.value))
        assert caught.value.column == column and words in str(caught.value)
        assert caught.value.row == _line_of(text, bad_record)
        assert _counts(loaded) == before
    assert errors[0] == errors[1]


def test_repeats_that_differ_by_a_fee_of_minus_one_against_minus_two_are_refused(loaded, tmp_path, monkeypatch):
    """Rows repeated across chunks are compared through a hash of their values: -1 and -2 (whose
    Python hashes are equal) must still differ."""
    fee = "F-1,T-1001,fee,approved,{0},EUR,{0},2024-02-01T10:00:00Z,,monthly fee\n"
    path = tmp_path / "ledger.csv"
    text = TXN_HEAD + fee.format("-2.00") + "".join(_ledger(30).splitlines(True)[1:]) + fee.format("-1.00")
    path.write_text(text)
    for chunk_rows in (10, 1_000_000):
        monkeypatch.setattr(csv_tables, "CHUNK_ROWS", chunk_rows)
        with pytest.raises(ImportRejected, match="first at row 2") as caught:
            import_file(loaded, path)
        assert caught.value.row == len(text.splitlines())


def test_a_refusal_while_writing_a_later_chunk_rolls_back_the_chunks_written(loaded, tmp_path, monkeypatch):
    """The database refuses the third chunk's write after two chunks went in: nothing stays,
    created traders included."""
    monkeypatch.setattr(csv_tables, "CHUNK_ROWS", 10)
    path = tmp_path / "ledger.csv"
    path.write_text(_ledger(40).replace("T-1003", "T-7777"))
    before = _counts(loaded)
    real = database.bulk_insert
    calls = []

    def failing(conn, table, frame, **kwargs):
        calls.append(table.name)
        if calls.count("transactions") == 3:
            raise sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key (planted)"))
        return real(conn, table, frame, **kwargs)

    monkeypatch.setattr(database, "bulk_insert", failing)
    with pytest.raises(ImportRejected, match="the database refused the rows"):
        import_file(loaded, path, create_missing_traders=True)
    assert calls == ["traders", "transactions", "transactions", "transactions"]
    assert _counts(loaded) == before


def test_chunked_import_writes_what_one_chunk_writes(loaded, tmp_path, monkeypatch):
    """Counts, rows repeated across chunks, rows already present, ids, and the registration time
    of a created trader (its earliest time in the whole file, here in the last chunk) do not
    depend on where chunks end."""
    early = "P-41,T-1003,deposit,approved,5.00,EUR,5.00,2024-01-05T10:00:00Z,,early\n"
    ledger = _ledger(45, {41: early}).replace("T-1003", "T-8888")
    repeats = _ledger(19).replace("T-1003", "T-8888").split("\n", 1)[1]  # records 0-18 again, identical
    path = tmp_path / "ledger.csv"
    path.write_text(ledger + repeats)
    results = []
    for chunk_rows in (4, 1_000_000):
        monkeypatch.setattr(csv_tables, "CHUNK_ROWS", chunk_rows)
        database.reset_data_per_table(loaded)  # the same starting point for both
        import_file(loaded, FIXTURES / "traders.csv")
        first = import_file(loaded, path, create_missing_traders=True)
        again = import_file(loaded, path, create_missing_traders=True)
        with loaded.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT t.txn_id, t.external_id, r.external_id, r.registered_at, t.amount "
                "FROM transactions t JOIN traders r USING (trader_id) ORDER BY t.txn_id")).all()
        results.append(((first.rows_read, first.inserted, first.skipped), again, rows))
    assert results[0] == results[1]
    (counts, again, rows) = results[0]
    assert counts == (64, {"traders": 1, "transactions": 45}, 19)
    assert again.inserted == {"transactions": 0} and again.skipped == 64
    assert {r[2]: r[3] for r in rows}["T-8888"] == datetime(2024, 1, 5, 10)


# ---- memory ---------------------------------------------------------------------------------

MEMORY_CHILD = r"""
import gc, json, sys
root, url, traders, sessions = sys.argv[1:5]
sys.path.insert(0, root)
from pathlib import Path
from connectors.database import get_engine, upgrade_schema
from connectors.importers import import_file

def megabytes(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith(field + ":"))

engine = get_engine(url)
upgrade_schema(engine)
import_file(engine, Path(traders))
gc.collect()
baseline = megabytes("VmRSS")
result = import_file(engine, Path(sessions))
print(json.dumps({"growth_mb": megabytes("VmHWM") - baseline, "rows": result.rows_read}))
"""


ROWS_LARGE = 200_000
# Peak growth of the importing process for 200,000 sessions (9 MB). Measured: parsed whole (the
# code before chunks) 250 MB on DuckDB and 255 MB on PostgreSQL; in chunks 107 MB on DuckDB (most
# of it DuckDB's own, for the transaction's new rows and their indexes) and 41 MB on PostgreSQL.
MEMORY_BOUND_MB = {"duckdb": 175, "postgres": 120}


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_importing_200k_rows_stays_within_a_fixed_memory_bound(backend, tmp_path, request):
    if backend == "duckdb":
        url = f"duckdb:///{tmp_path / 'memory.duckdb'}"
    else:
        from tests.conftest import _empty_pg

        url = request.getfixturevalue("pg_server_url")
        _empty_pg(url)
    rng = random.Random(3)
    traders, sessions = tmp_path / "traders.csv", tmp_path / "sessions.csv"
    traders.write_text("external_id,registered_at,country,email\n" + "".join(
        f"T-{i},2024-01-01T00:00:00Z,DE,t{i}@example.com\n" for i in range(2000)))
    with sessions.open("w") as f:
        f.write("external_id,trader_external_id,started_at,duration_s,surface\n")
        for i in range(ROWS_LARGE):
            f.write(f"S-{i},T-{rng.randrange(2000)},2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
                    f"{rng.randrange(24):02d}:00:00Z,{rng.randrange(3600)},{rng.choice(('web', 'mobile'))}\n")
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT), url, str(traders), str(sessions)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = json.loads(out.stdout.splitlines()[-1])
    assert measured["rows"] == ROWS_LARGE
    assert measured["growth_mb"] < MEMORY_BOUND_MB[backend], measured
