"""Symbol → asset class, contract size and quote currency, for approximate USD notionals.

Broker symbols are decorated (``EURUSD.m``, ``eurusdpro``, ``#AAPL``, ``US100.cash``,
``XAUUSD_i``), so the classifier strips the decoration and recognises the core by pattern.
Notional is ``lots × contract size × price × USD value of the quote currency``
(reference rates from :mod:`connectors.fx`). Contract sizes are the common retail defaults, not
any one broker's specification: FX 100,000 base units; gold, platinum, palladium 100 oz;
silver 5,000 oz; crude oil 1,000 barrels; natural gas 10,000 MMBtu; indices, crypto and
stocks 1 unit per lot. Unrecognised symbols get no asset class and no notional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.fx import USD_PER_UNIT

FIAT: frozenset[str] = frozenset(USD_PER_UNIT) - {"USC", "EUC"}

CRYPTO: frozenset[str] = frozenset({
    "BTC", "XBT", "ETH", "LTC", "XRP", "BCH", "ADA", "DOT", "SOL", "DOGE", "BNB", "LINK", "XLM",
    "EOS", "TRX", "AVAX", "MATIC", "POL", "SHIB", "UNI", "ATOM", "XMR", "ETC", "DASH", "ZEC",
    "NEO", "XTZ", "ALGO", "FIL", "NEAR", "APT", "ARB", "OP", "TON", "PEPE", "SUI",
})
CRYPTO_QUOTES: frozenset[str] = frozenset({"USD", "USDT", "USDC", "EUR", "GBP", "JPY", "BTC"})

METALS: dict[str, float] = {"XAU": 100.0, "XAG": 5_000.0, "XPT": 100.0, "XPD": 100.0}
METAL_NAMES: dict[str, str] = {"GOLD": "XAUUSD", "SILVER": "XAGUSD"}

# Energy CFD names → (contract size, quote currency).
ENERGIES: dict[str, tuple[float, str]] = {
    "USOIL": (1_000.0, "USD"), "UKOIL": (1_000.0, "USD"), "WTI": (1_000.0, "USD"),
    "BRENT": (1_000.0, "USD"), "XTIUSD": (1_000.0, "USD"), "XBRUSD": (1_000.0, "USD"),
    "CL": (1_000.0, "USD"), "OIL": (1_000.0, "USD"), "CRUDE": (1_000.0, "USD"),
    "XNGUSD": (10_000.0, "USD"), "NGAS": (10_000.0, "USD"), "NATGAS": (10_000.0, "USD"),
}

# Index CFD names → quote currency.
INDICES: dict[str, str] = {
    "US30": "USD", "DJ30": "USD", "DJI30": "USD", "WS30": "USD", "US500": "USD", "SPX500": "USD",
    "SP500": "USD", "US100": "USD", "NAS100": "USD", "USTEC": "USD", "NDX100": "USD",
    "US2000": "USD", "RUSSELL2000": "USD", "VIX": "USD", "USDX": "USD", "DXY": "USD",
    "GER40": "EUR", "GER30": "EUR", "DE40": "EUR", "DE30": "EUR", "DAX40": "EUR", "DAX30": "EUR",
    "FRA40": "EUR", "F40": "EUR", "EU50": "EUR", "STOXX50": "EUR", "ESTX50": "EUR",
    "SPA35": "EUR", "ESP35": "EUR", "IT40": "EUR", "NETH25": "EUR", "UK100": "GBP",
    "FTSE100": "GBP", "SWI20": "CHF", "JP225": "JPY", "JPN225": "JPY", "NIKKEI225": "JPY",
    "AUS200": "AUD", "HK50": "HKD", "HK33": "HKD", "CN50": "USD", "CHINA50": "USD",
    "CHINAA50": "USD", "SA40": "ZAR",
}

# Exchange suffixes some brokers put on share CFDs → quote currency.
STOCK_SUFFIXES: dict[str, str] = {
    "US": "USD", "NAS": "USD", "NYSE": "USD", "OQ": "USD", "N": "USD", "DE": "EUR", "F": "EUR",
    "PA": "EUR", "AS": "EUR", "MC": "EUR", "MI": "EUR", "UK": "GBP", "L": "GBP", "SW": "CHF",
    "HK": "HKD", "AU": "AUD", "TO": "CAD", "JP": "JPY",
}

FX_CONTRACT = 100_000.0
_CORE = re.compile(r"^[A-Z0-9]+")


@dataclass(frozen=True)
class Instrument:
    """What the classifier knows about one symbol (None where it cannot tell)."""

    symbol: str
    asset_class: str | None
    contract_size: float | None
    quote_currency: str | None


def classify(symbol: str) -> Instrument:
    """Asset class, contract size and quote currency of a broker symbol, by pattern."""
    raw = symbol.strip().upper()
    is_share = raw.startswith("#")
    stripped = raw.lstrip("#._")
    match = _CORE.match(stripped)
    core = match.group(0) if match else ""
    suffix = stripped[len(core):].lstrip("._-+!")
    # A six-letter FX core often carries a glued-on account-type suffix: EURUSDm, EURUSDPRO.
    if len(core) > 6 and core[:3] in FIAT and core[3:6] in FIAT:
        core = core[:6]

    if core in METAL_NAMES:
        core = METAL_NAMES[core]
    if len(core) == 6 and core[:3] in METALS and core[3:] in FIAT:
        return Instrument(symbol, "commodities", METALS[core[:3]], core[3:])
    if core in ENERGIES:
        size, quote = ENERGIES[core]
        return Instrument(symbol, "commodities", size, quote)
    if not is_share and len(core) == 6 and core[:3] in FIAT and core[3:] in FIAT:
        return Instrument(symbol, "fx", FX_CONTRACT, core[3:])
    for code in CRYPTO:
        rest = core[len(code):]
        if core.startswith(code) and rest in CRYPTO_QUOTES:
            return Instrument(symbol, "crypto", 1.0, "USD" if rest.startswith("USD") else rest)
    if core in INDICES and not is_share:
        return Instrument(symbol, "indices", 1.0, INDICES[core])
    if is_share or suffix in STOCK_SUFFIXES or re.fullmatch(r"[A-Z]{1,5}", core):
        return Instrument(symbol, "stocks", 1.0, STOCK_SUFFIXES.get(suffix, "USD"))
    return Instrument(symbol, None, None, None)


def notional_usd(instrument: Instrument, lots: float, price: float) -> float | None:
    """Approximate USD notional of ``lots`` at ``price`` (None when the symbol is unknown)."""
    if instrument.contract_size is None or instrument.quote_currency is None:
        return None
    rate = USD_PER_UNIT.get(instrument.quote_currency)
    if rate is None:
        return None
    return round(lots * instrument.contract_size * price * rate, 2)


__all__ = ["Instrument", "classify", "notional_usd"]
