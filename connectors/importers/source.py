"""Reading input files: bytes, text encodings, CSV records, and HTML/XLSX report grids.

Row numbers follow one convention everywhere: the line of the file where the row starts, as an
editor shows it (1-based, the header is line 1, so a CSV's first data row is row 2); for XLSX,
the worksheet row number Excel shows.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from connectors.errors import ImportRejected

XLSX_MAGIC = b"PK\x03\x04"
BLOCK_BYTES = 1 << 20  # what a streamed read holds of the file at a time
SNIFF_BYTES = 8192
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", re.IGNORECASE)


def read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes; an unreadable or empty file is rejected."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImportRejected(name, f"cannot read the file ({exc.strerror or exc})") from None
    if not data.strip():
        raise ImportRejected(name, "the file is empty")
    return data


def read_head(path: Path, name: str) -> bytes:
    """The first few KB of the file, enough to tell a workbook or a report from a CSV.

    Refuses an unreadable file, and an empty one (nothing but whitespace), as :func:`read_bytes`
    does, reading on past leading whitespace in blocks rather than loading the file.
    """
    try:
        with open(path, "rb") as f:
            head = block = f.read(SNIFF_BYTES)
            while block and not block.strip():
                block = f.read(BLOCK_BYTES)
    except OSError as exc:
        raise ImportRejected(name, f"cannot read the file ({exc.strerror or exc})") from None
    if not block.strip():
        raise ImportRejected(name, "the file is empty")
    return head


def _bom(data: bytes) -> tuple[str | None, bytes]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, data[len(bom):]
    return None, data


def _looks_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM shows as a NUL in every other byte of ASCII text."""
    sample = data[:4000]
    if len(sample) < 4:
        return None
    if sample[1::2].count(0) > len(sample) // 4:
        return "utf-16-le"
    if sample[0::2].count(0) > len(sample) // 4:
        return "utf-16-be"
    return None


def decode_strict(data: bytes, name: str) -> str:
    """Text of a CSV file: UTF-8 (BOM optional) or UTF-16 (BOM or obvious NULs).

    Anything else is rejected at the line holding the first undecodable byte, since guessing a
    legacy code page silently corrupts names.
    """
    encoding, body = _bom(data)
    encoding = encoding or _looks_utf16(body)
    if encoding is None and b"\x00" in body:
        raise ImportRejected(name, "is a binary file, not UTF-8 text")
    encoding = encoding or "utf-8"
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1 if encoding == "utf-8" else None
        raise ImportRejected(
            name, f"is not {encoding.upper()} text (byte 0x{body[exc.start]:02X} cannot be decoded); "
            "save the file as UTF-8", row=line) from None
    return text


def sniff_text(data: bytes) -> str:
    """The first few KB decoded leniently, only to recognise what kind of file this is."""
    encoding, body = _bom(data[:8192])
    encoding = encoding or _looks_utf16(body) or "utf-8"
    return body.decode(encoding, errors="ignore")


def decode_html(data: bytes, name: str) -> str:
    """Text of a terminal HTML report: BOM, else the charset in its <meta>, else UTF-8, else cp1252.

    MT5 writes UTF-16LE with a BOM; MT4 writes the Windows code page its <meta> declares.
    """
    encoding, body = _bom(data)
    encoding = encoding or _looks_utf16(body)
    if encoding is None:
        declared = _META_CHARSET.search(body[:4096])
        candidates = [declared.group(1).decode("ascii")] if declared else []
        candidates += ["utf-8", "cp1252"]
    else:
        candidates = [encoding]
    for candidate in candidates:
        try:
            return body.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    raise ImportRejected(name, "cannot be decoded as text (tried " + ", ".join(candidates) + ")")


@dataclass(frozen=True)
class CsvTable:
    """A CSV file's header (names as written) and its data records with their line numbers."""

    header: list[str]
    records: list[tuple[int, list[str]]]


class _BadCsv(Exception):
    """The csv module refused a record: ``reason`` (its message) and the ``line`` it starts on."""

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(reason)
        self.reason, self.line = reason, line


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Every non-blank record of a ``csv.reader`` with the line where it starts (blank lines are
    skipped but counted); a record the reader refuses raises :class:`_BadCsv`. Shared by the
    whole-text and the streamed reader, so both number rows alike."""
    previous_end = 0
    try:
        for values in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            yield start, values
    except csv.Error as exc:
        raise _BadCsv(str(exc), previous_end + 1) from None


def read_csv(text: str, name: str) -> CsvTable:
    """Split CSV text into header and records; blank lines are skipped but counted.

    The delimiter is a comma, or a semicolon/tab when the header line has no comma (spreadsheet
    exports in comma-decimal locales).
    """
    first_line = text.split("\n", 1)[0]
    delimiter = ","
    if "," not in first_line:
        delimiter = ";" if ";" in first_line else ("\t" if "\t" in first_line else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    try:
        for start, values in _numbered(reader):
            if header is None:
                header = values
                continue
            records.append((start, values))
    except _BadCsv as bad:
        raise ImportRejected(name, f"is not valid CSV ({bad.reason})", row=bad.line) from None
    if header is None:
        raise ImportRejected(name, "the file is empty")
    return CsvTable(header, records)


class CsvStream:
    """A CSV file read block by block: its header, then its data records with their line numbers.

    Holds one block of the file and the record being read, however large the file. It refuses
    what :func:`decode_strict` and :func:`read_csv` refuse on the whole text, with the same
    precedence: a NUL byte anywhere (a binary file), else the first undecodable byte, else the
    first broken quoting. Each is raised only after the rest of the file has been read, so a
    stronger problem further on still wins; :meth:`drain` does the same for a caller holding a
    weaker one (a bad value in row 3). ``sha256`` is the digest of the bytes once all are read.
    """

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        self._digest = hashlib.sha256()
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ImportRejected(name, f"cannot read the file ({exc.strerror or exc})") from None
        first = self._read(max(BLOCK_BYTES, SNIFF_BYTES))  # enough to see a BOM or UTF-16
        encoding, body = _bom(first)
        encoding = encoding or _looks_utf16(body)
        self._check_nul = encoding is None
        self.encoding = encoding or "utf-8"
        self._skip = len(first) - len(body)  # the BOM is not text
        self._first = body
        delimiter = self._delimiter(path)
        self._blocks = self._text_blocks()
        self._records = self._rows(delimiter)
        self._header: list[str] | None = None
        self.complete = False

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def sha256(self) -> str:
        if not self.complete:
            raise RuntimeError("the file has not been read to its end")
        return self._digest.hexdigest()

    def header(self) -> list[str]:
        """The first non-blank record; a file without one is empty."""
        if self._header is None:
            for _, values in self._records:
                self._header = values
                break
            else:
                raise ImportRejected(self.name, "the file is empty")
        return self._header

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """The data records after the header: (line where the record starts, values)."""
        return self._records

    def drain(self) -> None:
        """Read the rest of the file, raising a binary, encoding or CSV problem found there."""
        for _ in self._records:
            pass

    def _read(self, size: int | None = None) -> bytes:
        try:
            block = self._file.read(size or BLOCK_BYTES)
        except OSError as exc:
            raise ImportRejected(self.name, f"cannot read the file ({exc.strerror or exc})") from None
        self._digest.update(block)
        return block

    def _delimiter(self, path: Path) -> str:
        """A comma, or a semicolon/tab when the first line has no comma (as :func:`read_csv`).

        Looks ahead on a second handle, usually within the first block; decoding errors are
        ignored here since the read proper refuses the file for them anyway.
        """
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        seen: set[str] = set()
        try:
            with open(path, "rb") as f:
                f.seek(self._skip)
                while block := f.read(BLOCK_BYTES):
                    part, newline, _ = decoder.decode(block).partition("\n")
                    if "," in part:
                        return ","
                    seen.update(c for c in ";\t" if c in part)
                    if newline:
                        break
        except OSError as exc:
            raise ImportRejected(self.name, f"cannot read the file ({exc.strerror or exc})") from None
        return ";" if ";" in seen else ("\t" if "\t" in seen else ",")

    def _binary_check(self, block: bytes) -> None:
        if self._check_nul and b"\x00" in block:
            raise ImportRejected(self.name, "is a binary file, not UTF-8 text")

    def _text_blocks(self) -> Iterator[str]:
        """The decoded text, block by block (a character split across blocks is joined)."""
        decoder = codecs.getincrementaldecoder(self.encoding)("strict")
        newlines = 0  # "\n" bytes before this block: the line of an undecodable byte
        block, self._first = self._first, b""
        while True:
            self._binary_check(block)
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                # The error's bytes start with what the decoder held back from the last block.
                line = None
                if self.encoding == "utf-8":
                    line = newlines + exc.object[:exc.start].count(b"\n") + 1
                error = ImportRejected(
                    self.name, f"is not {self.encoding.upper()} text (byte "
                    f"0x{exc.object[exc.start]:02X} cannot be decoded); save the file as UTF-8",
                    row=line)
                while block := self._read():  # a NUL further on makes it a binary file
                    self._binary_check(block)
                raise error from None
            if text:
                yield text
            if not block:
                return
            newlines += block.count(b"\n")
            block = self._read()

    def _lines(self) -> Iterator[str]:
        """The text cut into lines as ``io.StringIO(text, newline="")`` cuts it (the csv module
        counts these lines); a line running across blocks is joined first."""
        pending: list[str] = []
        for text in self._blocks:
            if "\n" not in text and "\r" not in text:
                pending.append(text)
                continue
            lines = io.StringIO("".join(pending) + text, newline="").readlines()
            # The last line may go on in the next block, or be a "\r" whose "\n" is there.
            pending = [] if lines[-1].endswith("\n") else [lines.pop()]
            yield from lines
        if pending:
            yield from io.StringIO("".join(pending), newline="")

    def _rows(self, delimiter: str) -> Iterator[tuple[int, list[str]]]:
        """Every non-blank record with the line where it starts (blank lines are counted)."""
        reader = csv.reader(self._lines(), delimiter=delimiter, strict=True)
        try:
            yield from _numbered(reader)
        except _BadCsv as bad:
            error = ImportRejected(self.name, f"is not valid CSV ({bad.reason})", row=bad.line)
            for _ in self._blocks:  # a NUL or an undecodable byte further on comes first
                pass
            raise error from None
        self.complete = True


@dataclass(frozen=True)
class GridRow:
    """One visible table row of a report, colspans expanded so columns line up.

    ``cells`` holds each visible cell's text at its first column and "" in the columns it spans;
    ``titles`` holds each cell's ``title`` attribute (MT4 puts order comments there) likewise.
    """

    line: int
    cells: tuple[str, ...]
    titles: tuple[str, ...]

    def text(self) -> str:
        return " ".join(c for c in self.cells if c)


def _clean(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def html_grid(text: str, name: str) -> list[GridRow]:
    """Every <tr> of an HTML report as a GridRow, in document order.

    Cells with class "hidden" are dropped: MT5 puts an invisible spacer cell (sometimes with
    data in it) into Positions rows only, which would shift every later column.
    """
    import lxml.html
    from lxml import etree

    # lxml refuses str input that still declares an encoding in an XML prolog.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    try:
        doc = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ImportRejected(name, f"is not readable HTML ({exc})") from None
    rows: list[GridRow] = []
    for tr in doc.iter("tr"):
        cells: list[str] = []
        titles: list[str] = []
        for cell in tr:
            if not isinstance(cell.tag, str) or cell.tag.lower() not in {"td", "th"}:
                continue
            if "hidden" in (cell.get("class") or "").split():
                continue
            try:
                span = max(1, min(int(cell.get("colspan") or 1), 50))
            except ValueError:
                span = 1
            cells.append(_clean(cell.text_content()))
            titles.append(_clean(cell.get("title") or ""))
            cells.extend([""] * (span - 1))
            titles.extend([""] * (span - 1))
        rows.append(GridRow(tr.sourceline or 0, tuple(cells), tuple(titles)))
    return rows


def named_columns(header: GridRow) -> dict[str, int]:
    """Header cell → column index; a repeated name gets " 2" (Positions has Time and Price
    twice: open and close)."""
    names: dict[str, int] = {}
    for index, text in enumerate(header.cells):
        if not text:
            continue
        name = text if text not in names else f"{text} 2"
        names.setdefault(name, index)
    return names


def _xlsx_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y.%m.%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y.%m.%d")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return _clean(str(value))


def xlsx_grid(data: bytes, name: str) -> list[GridRow]:
    """The first worksheet of an XLSX workbook as GridRows (merged cells read as their top-left)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl's own errors all mean the same here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportRejected(name, f"is not a readable XLSX workbook ({reason})") from None
    try:
        sheet = book.worksheets[0]
        rows = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = tuple(_xlsx_text(v) for v in values)
            rows.append(GridRow(number, cells, ("",) * len(cells)))
        return rows
    finally:
        book.close()


__all__ = [
    "BLOCK_BYTES", "XLSX_MAGIC", "CsvStream", "CsvTable", "GridRow", "decode_html", "decode_strict",
    "html_grid", "named_columns", "read_bytes", "read_csv", "read_head", "sniff_text", "xlsx_grid",
]
