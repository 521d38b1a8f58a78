"""Re-importing rows that changed: status updates, the change history, reversals and chargebacks.

A payment provider's export changes rows already imported (pending -> approved, approved ->
reversed or charged back); the import updates them, keeps the old values in row_changes, refreshes
the rollups and counts inserted / updated / unchanged rows; identity fields may not change.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from analytics.changes import compute_row_changes
from analytics.filters import EVERYONE
from analytics.kpis import compute_kpis
from analytics.periods import DateRange
from connectors import schema
from connectors.errors import ImportRejected
from connectors.importers import import_file
from connectors.rollups import rollup_queries

MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))
TRADERS = ("external_id,registered_at,country,email,consent_email,vip_tier\n"
           "T1,2026-02-20T09:00:00,DE,t1@example.com,true,\n"
           "T2,2026-02-21T09:00:00,GB,t2@example.com,false,gold\n")
HEADER = "external_id,trader_external_id,kind,status,amount,currency,amount_usd,created_at,comment\n"


def _ledger(tmp_path, *rows: str, name: str = "ledger.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def _kpis(engine) -> dict[str, float | None]:
    return {k.key: k.value for k in compute_kpis(engine, date_range=MARCH, trader_filter=EVERYONE)}


@pytest.fixture
def broker(engine, tmp_path):
    traders = tmp_path / "traders.csv"
    traders.write_text(TRADERS)
    import_file(engine, traders)
    return engine


def _history(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(
            schema.row_changes.c.table_name, schema.row_changes.c.external_id, schema.row_changes.c.column_name,
            schema.row_changes.c.old_value, schema.row_changes.c.new_value, schema.row_changes.c.file_name,
            schema.row_changes.c.changed_by).order_by(schema.row_changes.c.change_id))]


def test_a_pending_first_deposit_approved_later_becomes_the_ftd_and_a_deposit(broker, tmp_path):
    first = import_file(broker, _ledger(tmp_path, "D1,T1,deposit,pending,600,USD,600,2026-03-05T10:00:00,"),
                        changed_by="test:alice")
    assert first.inserted == {"transactions": 1}
    before = _kpis(broker)
    assert (before["ftds"], before["deposits"], before["net_deposits"]) == (0, 0, 0)

    again = import_file(broker, _ledger(tmp_path, "D1,T1,deposit,approved,600,USD,600,2026-03-05T10:00:00,",
                                        name="psp_export_0306.csv"), changed_by="test:alice")

    assert again.inserted == {"transactions": 0} and again.updated == {"transactions": 1}
    assert again.unchanged == 0 and again.changed_fields == {"transactions.status": 1}
    after = _kpis(broker)
    assert (after["ftds"], after["deposits"], after["net_deposits"], after["depositors"]) == (1, 600, 600, 1)
    assert _history(broker) == [("transactions", "D1", "status", "pending", "approved", "psp_export_0306.csv",
                                 "test:alice")]
    changes = compute_row_changes(broker, external_id="D1")
    assert changes["import_id"].tolist() == [again.import_id]
    assert changes["changed_at"].notna().all()


def test_a_reversed_withdrawal_stops_counting_in_withdrawals_and_net_deposits(broker, tmp_path):
    rows = ["D1,T1,deposit,approved,1000,USD,1000,2026-03-02T10:00:00,",
            "W1,T1,withdrawal,approved,400,USD,400,2026-03-10T10:00:00,"]
    import_file(broker, _ledger(tmp_path, *rows))
    assert (_kpis(broker)["withdrawals"], _kpis(broker)["net_deposits"]) == (400, 600)

    result = import_file(broker, _ledger(tmp_path, rows[0], rows[1].replace("approved", "reversed")))

    assert result.updated == {"transactions": 1} and result.unchanged == 1
    kpis = _kpis(broker)
    assert (kpis["deposits"], kpis["withdrawals"], kpis["net_deposits"]) == (1000, 0, 1000)


def test_a_charged_back_ftd_stays_the_ftd_shows_as_charged_back_and_leaves_deposits(broker, tmp_path, query_rows):
    rows = ["D1,T1,deposit,approved,600,USD,600,2026-03-05T10:00:00,",
            "D2,T1,deposit,approved,200,USD,200,2026-03-20T10:00:00,",
            "D3,T2,deposit,approved,50,USD,50,2026-03-21T10:00:00,"]
    import_file(broker, _ledger(tmp_path, *rows))
    assert (_kpis(broker)["ftds"], _kpis(broker)["ftds_charged_back"]) == (2, 0)

    import_file(broker, _ledger(tmp_path, rows[0].replace("approved", "chargeback") + "card holder dispute",
                                *rows[1:]))

    kpis = _kpis(broker)
    assert kpis["ftds"] == 2  # T1's FTD is still the 600 of 5 March
    assert (kpis["ftds_charged_back"], kpis["ftds_charged_back_usd"]) == (1, 600)
    assert (kpis["deposits"], kpis["net_deposits"], kpis["depositors"]) == (250, 250, 2)
    ftd = query_rows(broker, "SELECT e.occurred_at, e.amount_usd FROM trader_events e JOIN traders t "
                             "USING (trader_id) WHERE e.event = 'ftd' AND t.external_id = 'T1'")
    assert ftd == [(datetime(2026, 3, 5, 10), 600.0)]
    assert query_rows(broker, "SELECT f.first_deposit_at FROM trader_firsts f JOIN traders t USING (trader_id) "
                              "WHERE t.external_id = 'T1'") == [(datetime(2026, 3, 5, 10),)]
    assert [h[2:5] for h in _history(broker)] == [("status", "approved", "chargeback"),
                                                  ("comment", None, "card holder dispute")]


def test_the_first_deposit_reversed_before_any_other_is_still_the_ftd(broker, tmp_path):
    # Imported already reversed (never seen approved here): it was approved when it was made.
    import_file(broker, _ledger(tmp_path, "D1,T1,deposit,reversed,600,USD,600,2026-03-05T10:00:00,",
                                "D2,T1,deposit,approved,100,USD,100,2026-03-25T10:00:00,"))
    kpis = _kpis(broker)
    assert (kpis["ftds"], kpis["ftds_charged_back"], kpis["deposits"]) == (1, 1, 100)


@pytest.mark.parametrize(("column", "old", "new", "named"), [
    ("created_at", "2026-03-05T10:00:00", "2026-03-06T10:00:00", "created_at"),
    ("kind", ",deposit,", ",withdrawal,", "kind"),
    ("trader", ",T1,", ",T2,", "trader_external_id"),
])
def test_a_changed_identity_field_is_refused_naming_row_and_values_and_nothing_changes(
        broker, tmp_path, table_counts, column, old, new, named):
    rows = ["D0,T1,deposit,approved,10,USD,10,2026-03-01T10:00:00,",
            "D1,T1,deposit,pending,600,USD,600,2026-03-05T10:00:00,"]
    import_file(broker, _ledger(tmp_path, *rows))
    counts = table_counts(broker)

    changed = [rows[0].replace("10,USD,10", "20,USD,20"), rows[1].replace("pending", "approved").replace(old, new)]
    with pytest.raises(ImportRejected) as refused:
        import_file(broker, _ledger(tmp_path, *changed, name="fix.csv"))

    error = refused.value
    assert (error.file, error.row, error.column) == ("fix.csv", 3, named)
    plain = {"trader": ("'T1'", "'T2'"), "kind": ("'deposit'", "'withdrawal'"),
             "created_at": ("'2026-03-05 10:00:00'", "'2026-03-06 10:00:00'")}[column]
    assert f"with {named} {plain[0]}, and this file says {plain[1]}" in str(error)
    assert "D1" in str(error) and "Nothing was imported" in str(error)
    assert table_counts(broker) == counts and _history(broker) == []
    kpis = _kpis(broker)
    assert (kpis["deposits"], kpis["ftds"]) == (10, 1)  # D0's amount kept: the whole file rolled back


def test_rows_are_counted_inserted_updated_and_unchanged_and_the_same_file_twice_changes_nothing(
        broker, tmp_path, table_counts, query_rows):
    rows = [f"D{i},T1,deposit,approved,{10 + i},USD,{10 + i},2026-03-0{i}T10:00:00," for i in range(1, 5)]
    import_file(broker, _ledger(tmp_path, *rows))
    update = _ledger(tmp_path, rows[0], rows[1].replace(",approved,", ",reversed,"), rows[2], rows[3],
                     "D5,T2,deposit,approved,99,USD,99,2026-03-09T10:00:00,", rows[3])
    result = import_file(broker, update)
    assert (result.rows_read, result.inserted, result.updated) == (6, {"transactions": 1}, {"transactions": 1})
    assert (result.unchanged, result.skipped) == (3, 4)  # 3 unchanged + 1 repeat inside the file
    assert query_rows(broker, "SELECT rows_read, rows_inserted, rows_updated, rows_unchanged, rows_skipped "
                              "FROM imports ORDER BY import_id DESC LIMIT 1") == [(6, 1, 1, 3, 4)]
    counts, history = table_counts(broker), _history(broker)

    again = import_file(broker, update)

    assert (again.inserted, again.updated, again.unchanged) == ({"transactions": 0}, {"transactions": 0}, 5)
    assert again.changed_fields == {}
    assert _history(broker) == history
    assert {**table_counts(broker), "imports": counts["imports"]} == counts


def test_a_traders_file_updates_the_columns_it_has_and_keeps_the_others(broker, tmp_path, query_rows):
    with broker.begin() as conn:
        conn.execute(schema.traders.update().values(consent_sms=True))
    path = tmp_path / "crm.csv"
    path.write_text("external_id,registered_at,country,email,consent_email,vip_tier,is_blocked,owner\n"
                    "T1,2026-02-20T09:00:00,DE,t1@example.com,false,silver,true,Anna Novak\n"
                    "T2,2026-02-21T09:00:00,GB,t2@example.com,false,gold,false,\n")

    result = import_file(broker, path, changed_by="app")

    assert result.updated == {"traders": 1} and result.unchanged == 1
    assert result.changed_fields == {"traders.consent_email": 1, "traders.vip_tier": 1, "traders.is_blocked": 1,
                                     "traders.owner": 1}
    assert query_rows(broker, "SELECT external_id, consent_email, consent_sms, vip_tier, is_blocked, owner FROM "
                              "traders ORDER BY external_id") == [("T1", False, True, "silver", True, "Anna Novak"),
                                                                  ("T2", False, True, "gold", False, None)]
    assert sorted(h[2:5] for h in _history(broker)) == [
        ("consent_email", "true", "false"), ("is_blocked", "false", "true"), ("owner", None, "Anna Novak"),
        ("vip_tier", None, "silver")]


def test_rollups_after_an_update_equal_a_full_rebuild(broker, tmp_path):
    rows = ["D1,T1,deposit,pending,600,USD,600,2026-03-05T10:00:00,",
            "D2,T1,deposit,approved,300,USD,300,2026-03-06T10:00:00,",
            "W1,T2,withdrawal,approved,40,USD,40,2026-03-07T10:00:00,",
            "D3,T2,deposit,approved,500,USD,500,2026-03-01T10:00:00,"]
    import_file(broker, _ledger(tmp_path, *rows))
    import_file(broker, _ledger(tmp_path, rows[0].replace("pending", "approved"),
                                rows[1].replace("approved", "chargeback"), rows[2].replace("approved", "reversed"),
                                rows[3].replace("500,USD,500", "450,USD,450")))
    with broker.connect() as conn:
        for table in schema.ROLLUP_TABLES:
            stored = sorted(tuple(r) for r in conn.execute(sa.select(*table.columns)))
            rebuilt = sorted(tuple(r) for r in conn.execute(rollup_queries()[table.name]))
            assert stored == rebuilt, table.name
        firsts = dict(conn.execute(sa.select(schema.trader_firsts.c.trader_id,
                                             schema.trader_firsts.c.first_deposit_at)).all())
    assert sorted(firsts.values()) == [datetime(2026, 3, 1, 10), datetime(2026, 3, 5, 10)]


def test_cli_import_reports_updates_and_changes_shows_the_history(cli_url, tmp_path, run_cli):
    traders = tmp_path / "traders.csv"
    traders.write_text(TRADERS)
    assert run_cli("import", str(traders), url=cli_url).returncode == 0
    pending = _ledger(tmp_path, "D1,T1,deposit,pending,600,USD,600,2026-03-05T10:00:00,")
    assert run_cli("import", str(pending), url=cli_url).returncode == 0
    approved = _ledger(tmp_path, "D1,T1,deposit,approved,600,USD,600,2026-03-05T10:00:00,", name="psp.csv")

    out = run_cli("import", str(approved), url=cli_url)

    assert out.returncode == 0, out.stderr
    assert "read 1 rows; wrote nothing new; updated transactions 1; 0 unchanged" in out.stdout
    assert "changed: transactions.status 1" in out.stdout
    history = run_cli("changes", "--external-id", "D1", "--format", "csv", url=cli_url)
    assert history.returncode == 0, history.stderr
    header, row = history.stdout.strip().splitlines()
    assert header == ("changed_at,table_name,external_id,column_name,old_value,new_value,import_id,file_name,"
                      "changed_by,row_id")
    fields = row.split(",")
    assert fields[1:6] == ["transactions", "D1", "status", "pending", "approved"]
    assert fields[7] == "psp.csv" and fields[8].startswith("cli:")
    none = run_cli("changes", "--external-id", "nobody", url=cli_url)
    assert none.returncode == 0 and none.stdout.strip() == "[]"


def test_updates_and_a_refusal_in_later_chunks_behave_as_in_one_chunk(broker, tmp_path, monkeypatch, query_rows):
    from connectors.importers import csv_tables

    monkeypatch.setattr(csv_tables, "CHUNK_ROWS", 2)
    rows = [f"D{i},T{1 + i % 2},deposit,pending,{10 + i},USD,{10 + i},2026-03-{1 + i:02d}T10:00:00," for i in range(7)]
    import_file(broker, _ledger(tmp_path, *rows))
    # The last row (line 8, the fourth chunk) moves its time: refused after three chunks compared.
    moved = [r.replace("pending", "approved") for r in rows[:6]] + [rows[6].replace("03-07", "03-08")]
    with pytest.raises(ImportRejected) as refused:
        import_file(broker, _ledger(tmp_path, *moved))
    assert (refused.value.row, refused.value.column) == (8, "created_at")
    assert query_rows(broker, "SELECT count(*) FROM transactions WHERE status = 'approved'") == [(0,)]

    result = import_file(broker, _ledger(tmp_path, *moved[:6], rows[6]))

    assert (result.updated, result.unchanged) == ({"transactions": 6}, 1)
    assert query_rows(broker, "SELECT count(*) FROM transactions WHERE status = 'approved'") == [(6,)]
    assert len(_history(broker)) == 6


def test_a_terminal_report_updates_its_account_and_positions_and_keeps_what_it_does_not_carry(engine, query_rows):
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    for kind in ("traders", "accounts"):
        import_file(engine, fixtures / "csv" / f"{kind}.csv")
    statement = fixtures / "mt4" / "Statement_2109876.htm"
    import_file(engine, statement, trader="T-1001", server_utc_offset_hours=2)
    with engine.begin() as conn:  # as if an earlier report had said otherwise
        conn.execute(sa.text("UPDATE accounts SET leverage = 50 WHERE external_id = 'A-5001'"))
        conn.execute(sa.text("UPDATE trades SET close_reason = 'client', channel = 'mobile' "
                             "WHERE external_id = (SELECT min(external_id) FROM trades WHERE close_reason = 'tp')"))

    again = import_file(engine, statement, trader="T-1001", server_utc_offset_hours=2, changed_by="test:bob")

    assert again.updated == {"accounts": 1, "transactions": 0, "trades": 1}
    assert again.changed_fields == {"accounts.leverage": 1, "trades.close_reason": 1}  # channel: not in the report
    assert query_rows(engine, "SELECT table_name, column_name, old_value, new_value, changed_by FROM row_changes "
                              "ORDER BY change_id") == [("accounts", "leverage", "50", "100", "test:bob"),
                                                        ("trades", "close_reason", "client", "tp", "test:bob")]
    assert query_rows(engine, "SELECT count(*) FROM trades WHERE channel = 'mobile'") == [(1,)]


def test_many_updates_at_once_go_through_the_staged_path_with_the_same_result(broker, tmp_path, query_rows):
    rows = [f"B{i:03d},T{1 + i % 2},deposit,pending,{10 + i},USD,{10 + i},2026-03-{1 + i % 28:02d}T10:{i % 60:02d}:00,"
            for i in range(300)]
    import_file(broker, _ledger(tmp_path, *rows))
    approved = [r.replace("pending", "approved") for r in rows[:250]]
    commented = [r + "settled" for r in rows[250:]]  # another set of columns, under the bulk threshold

    result = import_file(broker, _ledger(tmp_path, *approved, *commented))

    assert result.updated == {"transactions": 300}
    assert result.changed_fields == {"transactions.status": 250, "transactions.comment": 50}
    assert query_rows(broker, "SELECT status, count(*), sum(amount_usd), count(comment) FROM transactions "
                              "GROUP BY status ORDER BY status") == [
        ("approved", 250, float(sum(10 + i for i in range(250))), 0),
        ("pending", 50, float(sum(10 + i for i in range(250, 300))), 50)]
    assert len(_history(broker)) == 300
    assert _kpis(broker)["deposits"] == sum(10 + i for i in range(250))
    with broker.connect() as conn:
        table = schema.daily_activity
        stored = sorted(tuple(r) for r in conn.execute(sa.select(*table.columns)))
        assert stored == sorted(tuple(r) for r in conn.execute(rollup_queries()[table.name]))
