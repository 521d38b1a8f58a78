"""The command line, run as a user runs it: a subprocess with TRADERLENS_DB_URL set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_seed_then_info_reports_every_table(cli_url, run_cli):
    seeded = run_cli("seed", "--traders", "300", "--days", "60", "--seed", "2", "--end", "2026-11-01", url=cli_url)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded in" in seeded.stdout and "trades" in seeded.stdout
    info = run_cli("info", url=cli_url)
    assert info.returncode == 0, info.stderr
    lines = {line.split()[0]: line.split() for line in info.stdout.splitlines()[2:]}
    assert int(lines["traders"][1].replace(",", "")) == 300
    assert lines["trades"][2].startswith("2026-")


def test_seeding_a_filled_database_needs_replace(cli_url, run_cli):
    args = ("seed", "--traders", "100", "--days", "30", "--end", "2026-11-01")
    assert run_cli(*args, url=cli_url).returncode == 0
    again = run_cli(*args, url=cli_url)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1] == (
        "error: the database already holds 100 traders; seeding replaces everything, so pass --replace to confirm")
    assert run_cli(*args, "--replace", url=cli_url).returncode == 0


def test_setup_seeds_an_empty_embedded_database_once(tmp_path, run_cli):
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    first = run_cli("setup", "--traders", "200", "--days", "30", url=url)
    assert first.returncode == 0, first.stderr
    assert "Demo database ready" in first.stdout
    second = run_cli("setup", url=url)
    assert second.returncode == 0 and "200 traders" in second.stdout


@pytest.mark.parametrize("args, message", [
    (("info",), "error: Database postgresql+psycopg2://***@127.0.0.1:1/x is unavailable"),
    (("seed", "--traders", "10"), "error: Database postgresql+psycopg2://***@127.0.0.1:1/x is unavailable"),
])
def test_an_unreachable_database_fails_with_one_line(args, message, run_cli):
    out = run_cli(*args, url="postgresql+psycopg2://nobody:pw@127.0.0.1:1/x")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith(message)


def test_bad_arguments_and_missing_files_are_refused(tmp_path, run_cli):
    url = f"duckdb:///{tmp_path / 'x.duckdb'}"
    bad = run_cli("seed", "--traders", "-5", url=url)
    assert bad.returncode == 2 and "must be positive" in bad.stderr
    missing = run_cli("import", str(tmp_path / "nope.csv"), url=url)
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: no such file"


def test_import_reports_rows_and_is_idempotent(cli_url, tmp_path, run_cli):
    csv = tmp_path / "traders.csv"
    csv.write_text("external_id,registered_at,country,email\nC-1,2026-03-01T10:00:00Z,DE,a@b.example\n"
                   "C-2,2026-03-02 11:00,GB,c@d.example\n")
    first = run_cli("import", str(csv), url=cli_url)
    assert first.returncode == 0, first.stderr
    assert "read 2 rows" in first.stdout and "traders 2" in first.stdout
    second = run_cli("import", str(csv), "--kind", "traders", url=cli_url)
    assert second.returncode == 0 and "nothing new" in second.stdout and "skipped 2" in second.stdout


def test_a_rejected_import_names_file_row_and_column(cli_url, tmp_path, run_cli):
    csv = tmp_path / "traders.csv"
    csv.write_text("external_id,registered_at,country,email\nC-1,not-a-date,DE,a@b.example\n")
    out = run_cli("import", str(csv), url=cli_url)
    assert out.returncode == 1
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "traders.csv" in line and "registered_at" in line and "row" in line


def test_serve_hands_unknown_options_to_streamlit_and_other_commands_refuse_them(run_cli):
    import cli

    parser_args = ["serve", "--traders", "300", "--server.port", "8502", "--server.headless", "true"]
    parser = cli.build_parser()
    args, unknown = parser.parse_known_args(parser_args)
    assert args.command == "serve" and args.traders == 300
    assert unknown == ["--server.port", "8502", "--server.headless", "true"]
    refused = run_cli("info", "--server.port", "8502", url="duckdb:///:memory:")
    assert refused.returncode == 2 and "unrecognized arguments: --server.port 8502" in refused.stderr


def test_a_reader_that_goes_away_is_not_an_error(tmp_path, run_cli):
    """`cli.py report ... | head`: the closed pipe ends the report quietly, without a Python complaint."""
    url = f"duckdb:///{tmp_path / 'pipe.duckdb'}"
    assert run_cli("seed", "--traders", "200", "--days", "60", url=url).returncode == 0
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "report", "retention", "--start-event",
                             "registered", "--return-event", "login", "--period", "day", "--intervals", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TRADERLENS_DB_URL": url})
    proc.stdout.close()  # the reader is gone before the report is written
    stderr = proc.communicate(timeout=120)[1].decode()
    assert "unexpected" not in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr
    assert proc.returncode == 141
