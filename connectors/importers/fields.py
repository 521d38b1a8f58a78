"""Readers for single cell values: times, numbers, flags, codes and JSON.

Each reader takes the cell text and returns the canonical value or raises :class:`BadValue` with
plain words; the file reader that called it adds the file, row and column.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa


class BadValue(ValueError):
    """A value that cannot be read. ``column`` names another column than the one being read."""

    def __init__(self, reason: str, column: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


# ISO 3166-1 alpha-2, plus XK (Kosovo), which payment and KYC providers use.
_COUNTRY_CODES = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
    "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
    "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
    "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
    "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
    "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
    "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS XK YE YT ZA ZM ZW"
)
COUNTRIES: frozenset[str] = frozenset(_COUNTRY_CODES.split(" "))
# Common non-ISO spellings, so the message can say what to write instead.
COUNTRY_HINTS = {"UK": "GB", "EL": "GR"}

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MT_TIME = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
# Numeric(18, 2) holds up to 16 integer digits.
MONEY_LIMIT = 1e16
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2100, 1, 1)


def text_reader(column: sa.Column):
    """A reader that keeps the text (stripped) and enforces the column's length."""
    length = getattr(column.type, "length", None)

    def read(raw: str) -> str:
        if length is not None and len(raw) > length:
            raise BadValue(f"is {len(raw)} characters long; at most {length} fit")
        return raw

    return read


def _in_range(value: datetime, raw: str) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise BadValue(f"'{raw}' is outside 1970-2099")
    return value


def parse_iso_time(raw: str) -> datetime:
    """ISO 8601 date or date-time → naive UTC. No offset means UTC; an offset is applied."""
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadValue(f"'{raw}' is not an ISO 8601 date or time (e.g. 2024-03-01T14:05:00Z)") \
            from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return _in_range(value, raw)


def parse_mt_time(raw: str, offset_hours: float = 0.0) -> datetime:
    """MetaTrader's ``YYYY.MM.DD HH:MM[:SS]`` in server time → naive UTC.

    The terminal writes server time without a zone; ``offset_hours`` is the server's offset from
    UTC (e.g. 2 for a GMT+2 server), subtracted to get UTC.
    """
    match = _MT_TIME.fullmatch(raw.strip())
    if not match:
        raise BadValue(f"'{raw}' is not a MetaTrader time (YYYY.MM.DD HH:MM[:SS])")
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        value = datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise BadValue(f"'{raw}' is not a valid date") from None
    return _in_range(value - timedelta(hours=offset_hours), raw)


def parse_number(raw: str, *, spaced: bool = False) -> float:
    """A finite decimal number. ``spaced`` accepts MetaTrader's space thousands separator."""
    text = raw.strip()
    if spaced:
        text = re.sub(r"[\s\u00a0\u202f]", "", text)
    if not _NUMBER.fullmatch(text):
        lowered = text.lower()
        if lowered in {"nan", "inf", "+inf", "-inf", "infinity", "-infinity"}:
            raise BadValue(f"'{raw}' is not a finite number")
        raise BadValue(f"'{raw}' is not a number (use a dot for decimals, no thousands separator)")
    value = float(text)
    if not math.isfinite(value):
        raise BadValue(f"'{raw}' is not a finite number")
    return value


def parse_money(raw: str, *, spaced: bool = False) -> float:
    """A money amount rounded to cents, within NUMERIC(18, 2)."""
    value = parse_number(raw, spaced=spaced)
    if abs(value) >= MONEY_LIMIT:
        raise BadValue(f"'{raw}' is too large for an amount")
    return round(value, 2)


def parse_lots(raw: str, *, spaced: bool = False) -> float:
    """A trade size in lots: positive, stored with two decimals."""
    value = parse_number(raw, spaced=spaced)
    if value <= 0:
        raise BadValue(f"lots must be greater than 0, got '{raw}'")
    if round(value, 2) < 0.01:
        raise BadValue(f"lots '{raw}' is below 0.01, the smallest size the database stores")
    if value >= 1e10:
        raise BadValue(f"lots '{raw}' is too large")
    return round(value, 2)


def parse_price(raw: str, *, spaced: bool = False) -> float:
    """A price: a positive finite number."""
    value = parse_number(raw, spaced=spaced)
    if value <= 0:
        raise BadValue(f"a price must be greater than 0, got '{raw}'")
    return value


def parse_int(raw: str) -> int:
    """A whole number (``3600`` or ``3600.0``) that fits a 32-bit column."""
    value = parse_number(raw)
    if value != int(value):
        raise BadValue(f"'{raw}' is not a whole number")
    if abs(value) >= 2**31:
        raise BadValue(f"'{raw}' is too large")
    return int(value)


def parse_bool(raw: str) -> bool:
    """true/false, 1/0, yes/no (any case)."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadValue(f"'{raw}' is not a boolean (use true/false, 1/0 or yes/no)")


def enum_reader(allowed: Iterable[str]):
    """A reader accepting one of ``allowed`` in any case, returning the canonical spelling."""
    canonical = {value.lower(): value for value in allowed}

    def read(raw: str) -> str:
        value = canonical.get(raw.strip().lower().replace(" ", "_"))
        if value is None:
            raise BadValue(f"'{raw}' is not one of {', '.join(canonical.values())}")
        return value

    return read


def parse_country(raw: str) -> str:
    """An ISO 3166-1 alpha-2 country code, upper-cased."""
    code = raw.strip().upper()
    if code in COUNTRY_HINTS:
        raise BadValue(f"'{raw}' is not an ISO 3166 code; use {COUNTRY_HINTS[code]}")
    if code not in COUNTRIES:
        raise BadValue(f"'{raw}' is not an ISO 3166-1 alpha-2 country code (e.g. DE, GB, ZA)")
    return code


def parse_currency(raw: str) -> str:
    """A three-letter currency code, upper-cased."""
    code = raw.strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise BadValue(f"'{raw}' is not a three-letter currency code")
    return code


def parse_email(raw: str) -> str:
    """An e-mail address of plausible shape (something@domain.tld), at most 254 characters."""
    text = raw.strip()
    if not _EMAIL.fullmatch(text) or len(text) > 254:
        raise BadValue(f"'{raw}' is not an e-mail address")
    return text


def parse_timezone(raw: str) -> str:
    """An IANA time-zone name such as Europe/Berlin."""
    name = raw.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadValue(f"'{raw}' is not an IANA time zone (e.g. Europe/Berlin)") from None
    return name


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json_object(raw: str) -> str:
    """A JSON object, returned re-serialised with sorted keys so equal objects compare equal."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        raise BadValue(f"is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadValue(f"must be a JSON object like {{\"key\": \"value\"}}, got {type(value).__name__}")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


__all__ = [
    "COUNTRIES", "BadValue", "enum_reader", "parse_bool", "parse_country", "parse_currency",
    "parse_email", "parse_int", "parse_iso_time", "parse_json_object", "parse_lots",
    "parse_money", "parse_mt_time", "parse_number", "parse_price", "parse_timezone",
    "text_reader",
]
