"""CSV files with a header row, one per table: traders, accounts, trades, transactions,
kyc_events, sessions and portal_events (docs/import_formats.md lists every column)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import sqlalchemy as sa

from connectors import schema
from connectors.errors import ImportRejected
from connectors.importers import instruments
from connectors.importers.batch import ROW, StagedCsv, dedupe_in_file, typed
from connectors.importers.fields import (
    BadValue,
    enum_reader,
    parse_bool,
    parse_country,
    parse_currency,
    parse_email,
    parse_int,
    parse_iso_time,
    parse_json_object,
    parse_lots,
    parse_money,
    parse_number,
    parse_price,
    parse_timezone,
    text_reader,
)
from connectors.importers.source import CsvStream

Reader = Callable[[str], Any]
CHUNK_ROWS = 20_000  # records parsed, checked and staged at a time


@dataclass(frozen=True)
class Field:
    """One CSV column: how to read it, whether the header must have it, whether a cell may be
    empty (then ``default`` is used)."""

    name: str
    read: Reader
    required: bool = False
    blank_ok: bool = True
    default: Any = None


@dataclass(frozen=True)
class CsvKind:
    """A CSV kind: its target table, columns, natural key (for derived external ids when the
    file has none) and a cross-column check run on each parsed record."""

    kind: str
    table: sa.Table
    fields: tuple[Field, ...]
    key: tuple[str, ...] = ()
    check: Callable[[dict[str, Any]], None] | None = None

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]


def _text(table: sa.Table, column: str) -> Reader:
    return text_reader(table.c[column])


_REF = text_reader(schema.traders.c.external_id)  # trader/account references: same length limit


def _must(name: str, read: Reader) -> Field:
    """A required column whose cells may not be empty."""
    return Field(name, read, required=True, blank_ok=False)


def _flag(name: str) -> Field:
    return Field(name, parse_bool, default=False)


def _leverage(raw: str) -> int:
    """100 or 1:100 (as platforms print it)."""
    text = raw.strip()
    if text.startswith("1:"):
        text = text[2:]
    value = parse_int(text)
    if value <= 0:
        raise BadValue(f"leverage must be greater than 0, got '{raw}'")
    return value


def _positive_number(raw: str) -> float:
    value = parse_number(raw)
    if value <= 0:
        raise BadValue(f"must be greater than 0, got '{raw}'")
    return value


def _non_negative_money(raw: str) -> float:
    value = parse_money(raw)
    if value < 0:
        raise BadValue(f"must not be negative, got '{raw}'")
    return value


def _duration(raw: str) -> int:
    value = parse_int(raw)
    if value < 0:
        raise BadValue(f"duration_s must be 0 or more, got '{raw}'")
    return value


_LANGUAGE = text_reader(schema.traders.c.language)
_CORE_EVENTS = frozenset(e.lower() for e in schema.CORE_EVENTS)


SEGMENT_EVENT_PREFIX = "segment:"


def _event_name(raw: str) -> str:
    name = text_reader(schema.portal_events.c.event)(raw)
    if name.lower() in _CORE_EVENTS:
        raise BadValue(f"'{raw}' is a core event name; portal events may not use "
                       f"{', '.join(schema.CORE_EVENTS)}")
    if name.lower().startswith(SEGMENT_EVENT_PREFIX):
        # "segment:<name>" is the event of entering a saved segment, which funnels and retention read.
        raise BadValue(f"'{raw}' starts with '{SEGMENT_EVENT_PREFIX}', which names the event of entering a saved "
                       "segment; rename the portal event")
    return name


def _check_trader(rec: dict[str, Any]) -> None:
    if rec["registered_at"] is None and rec["lead_at"] is None:
        raise BadValue("is empty (a trader needs registered_at, or lead_at for a lead)",
                       column="registered_at")


def _check_trade(rec: dict[str, Any]) -> None:
    if rec["closed_at"] < rec["opened_at"]:
        raise BadValue(f"closed_at {rec['closed_at']} is before opened_at {rec['opened_at']}",
                       column="closed_at")
    if rec["asset_class"] is None or rec["notional_usd"] is None:
        # Derived from the symbol when the file leaves them out (instruments.py documents how).
        inst = instruments.classify(rec["symbol"])
        if rec["asset_class"] is None:
            rec["asset_class"] = inst.asset_class
        if rec["notional_usd"] is None:
            rec["notional_usd"] = instruments.notional_usd(inst, rec["lots"], rec["open_price"])


def _check_transaction(rec: dict[str, Any]) -> None:
    # Deposits and withdrawals carry the direction in `kind`; the amount is their size.
    if rec["kind"] in {"deposit", "withdrawal"}:
        for column in ("amount", "amount_usd"):
            if rec[column] <= 0:
                raise BadValue(f"a {rec['kind']} amount must be greater than 0 "
                               f"(the sign is in kind), got {rec[column]}", column=column)
    if rec["amount"] * rec["amount_usd"] < 0:
        raise BadValue("has the opposite sign of amount", column="amount_usd")


T = schema
CSV_KINDS: dict[str, CsvKind] = {k.kind: k for k in (
    CsvKind("traders", T.traders, (
        _must("external_id", _text(T.traders, "external_id")),
        Field("registered_at", parse_iso_time, required=True),
        Field("country", parse_country, required=True),
        Field("email", parse_email, required=True),
        Field("first_name", _text(T.traders, "first_name")),
        Field("last_name", _text(T.traders, "last_name")),
        Field("phone", _text(T.traders, "phone")),
        Field("timezone", parse_timezone),
        Field("language", _LANGUAGE),
        Field("acquisition_channel", enum_reader(T.ACQUISITION_CHANNELS)),
        Field("campaign_source", _text(T.traders, "campaign_source")),
        Field("affiliate_id", _text(T.traders, "affiliate_id")),
        Field("kyc_status", enum_reader(("none", *T.KYC_STATUSES)), default="none"),
        Field("kyc_approved_at", parse_iso_time),
        Field("lead_at", parse_iso_time),
        Field("vip_tier", _text(T.traders, "vip_tier")),
        Field("owner", _text(T.traders, "owner")),
        _flag("is_test"), _flag("is_blocked"),
        _flag("consent_email"), _flag("consent_sms"), _flag("consent_push"),
        _flag("consent_whatsapp"),
    ), check=_check_trader),
    CsvKind("accounts", T.accounts, (
        _must("external_id", _text(T.accounts, "external_id")),
        _must("trader_external_id", _REF),
        _must("platform", enum_reader(T.PLATFORMS)),
        _must("login", _text(T.accounts, "login")),
        _must("currency", parse_currency),
        Field("leverage", _leverage, required=True),
        _must("opened_at", parse_iso_time),
        Field("is_demo", parse_bool, required=True, default=False),
        Field("server", _text(T.accounts, "server")),
        Field("account_group", _text(T.accounts, "account_group")),
    )),
    CsvKind("trades", T.trades, (
        _must("external_id", _text(T.trades, "external_id")),
        _must("trader_external_id", _REF),
        _must("symbol", _text(T.trades, "symbol")),
        _must("side", enum_reader(("buy", "sell"))),
        _must("lots", parse_lots),
        _must("opened_at", parse_iso_time),
        _must("closed_at", parse_iso_time),
        _must("open_price", parse_price),
        _must("close_price", parse_price),
        _must("profit_usd", parse_money),
        Field("account_external_id", _REF),
        Field("asset_class", enum_reader(T.ASSET_CLASSES)),
        Field("notional_usd", _non_negative_money),
        Field("commission_usd", parse_money, default=0.0),
        Field("swap_usd", parse_money, default=0.0),
        Field("close_reason", enum_reader(T.CLOSE_REASONS)),
        Field("leverage_used", _positive_number),
        Field("channel", enum_reader(T.TRADE_CHANNELS)),
    ), check=_check_trade),
    CsvKind("transactions", T.transactions, (
        _must("external_id", _text(T.transactions, "external_id")),
        _must("trader_external_id", _REF),
        _must("kind", enum_reader(T.TXN_KINDS)),
        _must("status", enum_reader(T.TXN_STATUSES)),
        _must("amount", parse_money),
        _must("currency", parse_currency),
        _must("amount_usd", parse_money),
        _must("created_at", parse_iso_time),
        Field("method", _text(T.transactions, "method")),
        Field("psp", _text(T.transactions, "psp")),
        Field("account_external_id", _REF),
        Field("comment", _text(T.transactions, "comment")),
    ), check=_check_transaction),
    CsvKind("kyc_events", T.kyc_events, (
        _must("trader_external_id", _REF),
        _must("status", enum_reader(T.KYC_STATUSES)),
        _must("occurred_at", parse_iso_time),
        Field("external_id", _text(T.kyc_events, "external_id")),
        Field("reason", _text(T.kyc_events, "reason")),
    ), key=("trader_external_id", "status", "occurred_at")),
    CsvKind("sessions", T.sessions, (
        _must("trader_external_id", _REF),
        _must("started_at", parse_iso_time),
        _must("duration_s", _duration),
        _must("surface", enum_reader(T.SURFACES)),
        Field("external_id", _text(T.sessions, "external_id")),
    ), key=("trader_external_id", "started_at", "surface")),
    CsvKind("portal_events", T.portal_events, (
        _must("trader_external_id", _REF),
        _must("event", _event_name),
        _must("occurred_at", parse_iso_time),
        Field("properties", parse_json_object),
        Field("external_id", _text(T.portal_events, "external_id")),
    ), key=("trader_external_id", "event", "occurred_at", "properties")),
)}


def derived_external_id(parts: list[Any]) -> str:
    """"h:" + sha1 of the natural key, so a row without an id gets the same one on re-import."""
    text = "|".join("" if p is None else p.isoformat() if isinstance(p, datetime) else str(p)
                    for p in parts)
    return "h:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def header_columns(header: list[str], name: str) -> dict[str, int]:
    """Column name (trimmed, lower-case) → position; a repeated name is an error."""
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        column = raw.strip().lower()
        if not column:
            continue
        if column in positions:
            raise ImportRejected(name, f"column '{column}' appears twice in the header",
                                 column=column)
        positions[column] = index
    return positions


def _parsed(spec: CsvKind, stream: CsvStream, name: str, *, whole_file: bool) -> Iterator[dict[str, Any]]:
    """Each data record of ``stream`` read and checked, in file order.

    With ``whole_file`` a refusal waits until the rest of the file has been read (``drain``), so
    that a binary, encoding or CSV problem anywhere wins over a bad value as it does when the
    whole text is split first; the preview of the first rows does not wait.
    """
    def refuse(error: ImportRejected) -> NoReturn:
        if whole_file:
            stream.drain()
        raise error

    try:
        positions = header_columns(header := stream.header(), name)
    except ImportRejected as exc:
        refuse(exc)
    for column in spec.required:
        if column not in positions:
            refuse(ImportRejected(
                name, f"required column '{column}' is missing (a {spec.kind} file needs "
                f"{', '.join(spec.required)})", column=column))
    width = len(header)
    empty = True
    for line, values in stream.records():
        empty = False
        if len(values) != width and not (len(values) > width and not any(
                v.strip() for v in values[width:])):
            refuse(ImportRejected(
                name, f"has {len(values)} values but the header has {width} columns", row=line))
        try:
            yield _record(spec, positions, values, line, name)
        except ImportRejected as exc:
            refuse(exc)
    if empty:
        raise ImportRejected(name, "the file has a header but no data rows")


def _columns(spec: CsvKind) -> list[str]:
    return ["external_id", *[f.name for f in spec.fields if f.name != "external_id"], ROW]


def preview_csv_kind(kind: str, stream: CsvStream, name: str, rows: int) -> pd.DataFrame:
    """The first ``rows`` distinct records of a CSV of ``kind`` in their canonical columns (no
    ``_row``), reading only as far into the file as they go."""
    spec = CSV_KINDS[kind]
    records: list[dict[str, Any]] = []
    ids: set[str] = set()
    if rows > 0:
        for record in _parsed(spec, stream, name, whole_file=False):
            records.append(record)
            ids.add(record["external_id"])
            if len(ids) >= rows:
                break
    unique = dedupe_in_file(records, name)[0]
    frame = pd.DataFrame(unique, columns=_columns(spec))
    return typed(spec.table, frame).drop(columns=[ROW]).head(rows)


class _SeenIds:
    """The external_ids already staged, as hashes: two independent 64-bit hashes of the id (two
    different ids agree on both with odds of 2^-128), the line of its first row and a 64-bit hash
    of that row's parsed values. 32 bytes a row, where the rows themselves take a kilobyte or so
    as Python objects. Kept in runs sorted by the first hash, merged as they pile up."""

    _KEYS = ("traderlens-ids-1", "traderlens-ids-2")  # siphash keys: 16 bytes each

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def hashes(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(ids, dtype=object)
        return (pd.util.hash_array(values, hash_key=self._KEYS[0]),
                pd.util.hash_array(values, hash_key=self._KEYS[1]))

    def lookup(self, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(line, value hash) of the first row with each id; line -1 where the id is new."""
        lines = np.full(len(first), -1, dtype=np.int64)
        values = np.zeros(len(first), dtype=np.int64)
        for h1, h2, line, value in self._runs:
            left = np.searchsorted(h1, first, "left")
            right = np.searchsorted(h1, first, "right")
            for i in np.flatnonzero(right > left):
                # Equal first hashes of different ids are rare; the second tells them apart.
                for j in range(left[i], right[i]):
                    if h2[j] == second[i]:
                        lines[i], values[i] = line[j], value[j]
        return lines, values

    def add(self, first: np.ndarray, second: np.ndarray, lines: np.ndarray, values: np.ndarray) -> None:
        """Remember a chunk's new ids (a run of their own, or all runs merged once there are 8)."""
        if len(self._runs) >= 8:
            first, second, lines, values = (np.concatenate(parts) for parts in zip(
                *self._runs, (first, second, lines, values), strict=True))
            self._runs = []
        order = np.argsort(first, kind="stable")
        self._runs.append((first[order], second[order], lines[order], values[order]))


def _value_hash(record: dict[str, Any]) -> int:
    """A hash of a record's parsed values (not its line): equal values give equal hashes, as
    Python's hash agrees with ==. Numbers are hashed as their text, because the hash of a number
    is the number itself but for -1, which hashes as -2: a fee of -1.00 would pass for -2.00."""
    return hash(tuple(repr(v + 0) if isinstance(v, int | float) and not isinstance(v, bool) else v
                      for k, v in record.items() if k != ROW))


def _dedupe(records: list[dict[str, Any]], seen: _SeenIds,
            name: str) -> tuple[list[dict[str, Any]], int, ImportRejected | None]:
    """The records whose external_id neither an earlier chunk nor an earlier record of this one
    has, the number of identical repeats dropped, and the first conflicting repeat, as
    :func:`~connectors.importers.batch.dedupe_in_file` finds them on a whole file."""
    first, second = seen.hashes([r["external_id"] for r in records])
    earlier_lines, earlier_values = seen.lookup(first, second)
    here: dict[str, tuple[int, int]] = {}
    keep: list[int] = []
    values: list[int] = []
    skipped = 0
    for i, record in enumerate(records):
        key, value = record["external_id"], _value_hash(record)
        found = here.get(key)
        if found is None and earlier_lines[i] >= 0:
            found = (int(earlier_lines[i]), int(earlier_values[i]))
        if found is None:
            here[key] = (record[ROW], value)
            keep.append(i)
            values.append(value)
        elif found[1] == value:
            skipped += 1
        else:
            return [], skipped, ImportRejected(
                name, f"external_id '{key}' appears again (first at row {found[0]}) with different "
                "values", row=record[ROW], column="external_id")
    index = np.asarray(keep, dtype=np.int64)
    seen.add(first[index], second[index], np.asarray([records[i][ROW] for i in keep], dtype=np.int64),
             np.asarray(values, dtype=np.int64))
    return [records[i] for i in keep], skipped, None


def stage_csv_kind(kind: str, stream: CsvStream, name: str) -> StagedCsv:
    """Read and validate a whole CSV of ``kind`` (no database access), ``CHUNK_ROWS`` records at a
    time, staging its distinct records on disk. Refuses the file with the problem a whole-file
    read names first."""
    spec = CSV_KINDS[kind]
    staged = StagedCsv(file=name, kind=kind, table=spec.table)
    seen = _SeenIds()
    conflict: ImportRejected | None = None
    chunk: list[dict[str, Any]] = []
    try:
        for record in _parsed(spec, stream, name, whole_file=True):
            staged.rows_read += 1
            if conflict is not None:
                continue  # a bad value further on still comes before the repeated external_id
            chunk.append(record)
            if len(chunk) >= CHUNK_ROWS:
                conflict = _stage_chunk(staged, spec, chunk, seen, name)
                chunk = []
        if chunk and conflict is None:
            conflict = _stage_chunk(staged, spec, chunk, seen, name)
        if conflict is not None:
            raise conflict
        staged.sha256 = stream.sha256
        staged.columns = frozenset(header_columns(stream.header(), name)) & {f.name for f in spec.fields}
    except BaseException:
        staged.close()
        raise
    return staged


def _stage_chunk(staged: StagedCsv, spec: CsvKind, chunk: list[dict[str, Any]], seen: _SeenIds,
                 name: str) -> ImportRejected | None:
    unique, skipped, conflict = _dedupe(chunk, seen, name)
    if conflict is None:
        staged.skipped += skipped
        staged.append(typed(spec.table, pd.DataFrame(unique, columns=_columns(spec))))
    return conflict


def _record(spec: CsvKind, positions: dict[str, int], values: list[str], line: int,
            name: str) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for field in spec.fields:
        index = positions.get(field.name)
        raw = values[index].strip() if index is not None else ""
        if not raw:
            if not field.blank_ok:
                raise ImportRejected(name, "is empty", row=line, column=field.name)
            rec[field.name] = field.default
            continue
        try:
            rec[field.name] = field.read(raw)
        except BadValue as exc:
            raise ImportRejected(name, exc.reason, row=line, column=field.name) from None
    if spec.check is not None:
        try:
            spec.check(rec)
        except BadValue as exc:
            raise ImportRejected(name, exc.reason, row=line, column=exc.column) from None
    if not rec.get("external_id"):
        rec["external_id"] = derived_external_id([rec[k] for k in spec.key])
    rec[ROW] = line
    return rec


def detect_csv_kind(header: list[str], name: str) -> str | None:
    """The CSV kind whose required columns the header has (the most specific one), or None."""
    columns = {c.strip().lower() for c in header}
    matches = [k for k in CSV_KINDS.values() if set(k.required) <= columns]
    if not matches:
        return None
    best = max(len(k.required) for k in matches)
    top = [k.kind for k in matches if len(k.required) == best]
    if len(top) == 1:
        return top[0]
    stem = name.lower()
    named = [k for k in top if k in stem]
    return named[0] if len(named) == 1 else None


__all__ = ["CHUNK_ROWS", "CSV_KINDS", "CsvKind", "Field", "derived_external_id", "detect_csv_kind",
           "header_columns", "preview_csv_kind", "stage_csv_kind"]
