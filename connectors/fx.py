"""Static reference exchange rates for converting account-currency money to USD.

This is an APPROXIMATION: one fixed rate per currency (rounded mid-market levels of mid-2025),
not the rate on the day of each transaction. It serves importers of terminal reports (MT4/MT5),
whose money is in the account currency and carries no USD figure. Brokers that need exact USD
amounts should import their payment ledger as a transactions CSV, which carries ``amount_usd``.
"""

from __future__ import annotations

# USD value of one unit of each currency. Cent accounts (USC, EUC) are common on retail FX
# platforms and hold 1/100 of the unit.
USD_PER_UNIT: dict[str, float] = {
    "USD": 1.0, "USC": 0.01,
    "EUR": 1.08, "EUC": 0.0108,
    "GBP": 1.27, "JPY": 0.0067, "CHF": 1.13, "AUD": 0.66, "CAD": 0.73, "NZD": 0.61,
    "SGD": 0.74, "HKD": 0.128, "SEK": 0.095, "NOK": 0.094, "DKK": 0.145, "PLN": 0.25,
    "CZK": 0.043, "HUF": 0.0027, "TRY": 0.031, "ZAR": 0.054, "MXN": 0.055, "CNH": 0.138,
    "CNY": 0.138, "INR": 0.012, "ILS": 0.27, "AED": 0.272, "SAR": 0.267, "QAR": 0.275,
    "KWD": 3.25, "BHD": 2.65, "OMR": 2.6, "JOD": 1.41, "THB": 0.028, "MYR": 0.21,
    "IDR": 0.000063, "PHP": 0.018, "KRW": 0.00074, "TWD": 0.031, "VND": 0.00004,
    "BRL": 0.19, "CLP": 0.0011, "COP": 0.00025, "ARS": 0.001, "RUB": 0.011, "UAH": 0.024,
    "RON": 0.22, "BGN": 0.55, "ISK": 0.0073, "NGN": 0.00067, "KES": 0.0077, "EGP": 0.021,
    "MAD": 0.1, "PKR": 0.0036, "LKR": 0.0033, "BDT": 0.0085,
}


def usd_per_unit(currency: str) -> float | None:
    """USD value of one unit of ``currency`` (ISO 4217 code, any case), or None if unknown."""
    return USD_PER_UNIT.get(currency.strip().upper())


def to_usd(amount: float, currency: str) -> float:
    """``amount`` in ``currency`` converted to USD at the reference rate, rounded to cents.

    Raises KeyError for a currency not in the table; callers turn that into their own error.
    """
    rate = usd_per_unit(currency)
    if rate is None:
        raise KeyError(currency)
    return round(amount * rate, 2)


__all__ = ["USD_PER_UNIT", "to_usd", "usd_per_unit"]
