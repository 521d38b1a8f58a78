"""A realistic, seeded forex/CFD broker that fills the consolidated trader database.

The simulator stands in for a broker's back office so the demo looks alive and so later work can
check its methods against a known truth. It is deterministic: the same ``SimulationConfig``
(traders, days, seed, end) yields the same rows on every backend.

How a trader's life is generated:
1. Leads and registrations over the period, shaped by growth, weekends and month starts, with
   acquisition channels (and affiliates/IBs) of different quality and countries with time zones.
2. The funnel registered → KYC submitted → approved (with rejections and resubmissions) → FTD
   (with declined attempts) → first trade → redeposits; portal events precede deposits and trades.
3. From the FTD on, a day-by-day loop over all depositors at once (numpy, no per-trader Python):
   sessions, trades with P&L on a per-symbol price path, redeposits, withdrawals (some fail), and
   a churn hazard driven by what happened: realised losses relative to deposits, first-month
   engagement, recent inactivity, failed withdrawals and an empty balance. A few churned traders
   come back (reactivation). Every position is sized within the trader's equity at its opening x
   the account's leverage (the ledger's equity: approved money and the client P&L of the
   positions closed by then), on at most RISK_DEPOSITS x the trader's deposits; a position that
   would take the balance below zero is stopped out, and with no equity left trading stops.
4. Hidden behavioural personas set the parameters. Personas, churn dates and drivers go to a
   truth table in the separate ``simulator_truth`` schema, which application code never reads.
5. Each trader has an owner (``traders.owner``): a named account manager once funded, the
   retention desk before, nobody for a lead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from connectors import schema
from connectors.database import bulk_insert, reset_data, reset_data_per_table, upgrade_schema, write_lock
from connectors.errors import DatabaseNotEmpty
from connectors.rollups import refresh_rollups
from connectors.schema import TRUTH_SCHEMA

Progress = Callable[[str, float], None]
DAY = 86_400


def _noop(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``end`` is exclusive (midnight UTC); by default today's midnight."""

    traders: int = 20_000
    days: int = 548
    seed: int = 7
    end: date | None = None

    def end_date(self) -> date:
        return self.end or datetime.now(UTC).date()

    def start_date(self) -> date:
        return self.end_date() - timedelta(days=self.days)


@dataclass(frozen=True)
class Persona:
    """Behavioural parameters of one hidden trader type."""

    name: str
    share: float
    sessions_per_day: float
    trades_per_session: float
    hold_median_s: float
    hold_sigma: float
    asset_mix: tuple[float, float, float, float, float]  # fx, crypto, indices, commodities, stocks
    leverage_used: tuple[float, float]  # lognormal median and sigma of notional / balance
    ftd_median_usd: float
    redeposit_per_day: float
    withdraw_per_day: float
    base_churn_per_day: float
    edge: float  # mean per-trade return beyond spread (negative: the trader loses on average)
    surfaces: tuple[float, float, float]  # web, mobile, desktop
    platforms: tuple[float, float, float]  # MT4, MT5, cTrader
    ftd_propensity: float
    expert: bool = False


PERSONAS: tuple[Persona, ...] = (
    Persona("scalper", 0.12, 1.6, 5.0, 150, 1.0, (0.70, 0.0, 0.15, 0.15, 0.0), (18, 0.5), 1500,
            0.020, 0.012, 0.0028, -0.00010, (0.1, 0.1, 0.8), (0.35, 0.30, 0.35), 0.55),
    Persona("swing_trader", 0.22, 0.7, 0.7, 2.5 * DAY, 0.8, (0.50, 0.05, 0.20, 0.15, 0.10), (6, 0.5),
            1000, 0.012, 0.010, 0.0020, -0.0002, (0.45, 0.25, 0.30), (0.45, 0.45, 0.10), 0.50),
    Persona("crypto_gambler", 0.18, 1.4, 1.8, 3 * 3600, 1.2, (0.10, 0.75, 0.10, 0.05, 0.0), (25, 0.6),
            300, 0.035, 0.006, 0.0040, -0.0015, (0.2, 0.75, 0.05), (0.45, 0.50, 0.05), 0.45),
    Persona("occasional_investor", 0.30, 0.22, 0.45, 12 * DAY, 0.9, (0.15, 0.05, 0.30, 0.05, 0.45),
            (2, 0.5), 500, 0.008, 0.004, 0.0024, -0.0005, (0.55, 0.40, 0.05), (0.40, 0.55, 0.05), 0.40),
    Persona("bonus_hunter", 0.10, 0.6, 1.5, 1800, 1.0, (0.60, 0.0, 0.10, 0.30, 0.0), (10, 0.5), 250,
            0.010, 0.060, 0.0100, -0.0004, (0.5, 0.4, 0.1), (0.55, 0.40, 0.05), 0.65),
    Persona("algo_trader", 0.08, 0.35, 0.0, 2400, 1.0, (0.80, 0.0, 0.0, 0.20, 0.0), (8, 0.4), 3000,
            0.010, 0.010, 0.0014, -0.00005, (0.0, 0.0, 1.0), (0.50, 0.45, 0.05), 0.60, expert=True),
)
PERSONA_NAMES = tuple(p.name for p in PERSONAS)
ALGO_TRADES_PER_DAY = 4.0

# code, weight, IANA zone, standard UTC offset (hours; DST ignored), currency, ESMA leverage cap
COUNTRIES: tuple[tuple[str, float, str, float, str, bool], ...] = (
    ("GB", 0.10, "Europe/London", 0, "GBP", True),
    ("DE", 0.09, "Europe/Berlin", 1, "EUR", True),
    ("ES", 0.06, "Europe/Madrid", 1, "EUR", True),
    ("IT", 0.06, "Europe/Rome", 1, "EUR", True),
    ("PL", 0.05, "Europe/Warsaw", 1, "EUR", True),
    ("ZA", 0.08, "Africa/Johannesburg", 2, "USD", False),
    ("AE", 0.07, "Asia/Dubai", 4, "USD", False),
    ("NG", 0.08, "Africa/Lagos", 1, "USD", False),
    ("KE", 0.04, "Africa/Nairobi", 3, "USD", False),
    ("MY", 0.08, "Asia/Kuala_Lumpur", 8, "USD", False),
    ("TH", 0.06, "Asia/Bangkok", 7, "USD", False),
    ("VN", 0.06, "Asia/Ho_Chi_Minh", 7, "USD", False),
    ("BR", 0.09, "America/Sao_Paulo", -3, "USD", False),
    ("MX", 0.05, "America/Mexico_City", -6, "USD", False),
    ("CL", 0.03, "America/Santiago", -4, "USD", False),
)
LANGUAGES = {"GB": "en", "DE": "de", "ES": "es", "IT": "it", "PL": "pl", "ZA": "en", "AE": "ar",
             "NG": "en", "KE": "en", "MY": "ms", "TH": "th", "VN": "vi", "BR": "pt", "MX": "es",
             "CL": "es"}
USD_PER = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}

# channel, share, FTD quality multiplier, campaign sources
CHANNELS: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    ("organic", 0.28, 1.10, ("seo_blog", "direct", "app_store")),
    ("paid_search", 0.24, 0.85, ("google_brand", "google_generic", "bing")),
    ("social", 0.20, 0.65, ("facebook_lookalike", "instagram", "tiktok")),
    ("affiliate", 0.18, 1.00, ("ib_network",)),
    ("referral", 0.10, 1.35, ("refer_a_friend",)),
)
N_AFFILIATES = 60

# symbol, asset class index, start price, daily volatility, contract size, quote→USD, spread (return)
SYMBOLS: tuple[tuple[str, int, float, float, float, float, float], ...] = (
    ("EURUSD", 0, 1.08, 0.005, 100_000, 1.0, 0.00008),
    ("GBPUSD", 0, 1.27, 0.006, 100_000, 1.0, 0.00010),
    ("USDJPY", 0, 150.0, 0.006, 100_000, 1 / 150.0, 0.00009),
    ("AUDUSD", 0, 0.66, 0.007, 100_000, 1.0, 0.00012),
    ("USDCAD", 0, 1.36, 0.005, 100_000, 1 / 1.36, 0.00012),
    ("EURGBP", 0, 0.85, 0.004, 100_000, 1.27, 0.00012),
    ("BTCUSD", 1, 60_000.0, 0.035, 1, 1.0, 0.0010),
    ("ETHUSD", 1, 3_000.0, 0.045, 1, 1.0, 0.0012),
    ("SOLUSD", 1, 150.0, 0.060, 1, 1.0, 0.0020),
    ("US500", 2, 5_200.0, 0.010, 1, 1.0, 0.00015),
    ("NAS100", 2, 18_000.0, 0.013, 1, 1.0, 0.00015),
    ("GER40", 2, 18_000.0, 0.011, 1, 1.08, 0.00015),
    ("UK100", 2, 8_000.0, 0.009, 1, 1.27, 0.00020),
    ("XAUUSD", 3, 2_300.0, 0.010, 100, 1.0, 0.00015),
    ("XAGUSD", 3, 28.0, 0.018, 5_000, 1.0, 0.00040),
    ("XTIUSD", 3, 78.0, 0.020, 1_000, 1.0, 0.00040),
    ("AAPL", 4, 190.0, 0.015, 1, 1.0, 0.0005),
    ("TSLA", 4, 200.0, 0.030, 1, 1.0, 0.0008),
    ("NVDA", 4, 120.0, 0.028, 1, 1.0, 0.0006),
    ("AMZN", 4, 180.0, 0.018, 1, 1.0, 0.0005),
)
ASSET_CLASS_NAMES = ("fx", "crypto", "indices", "commodities", "stocks")
PORTAL_EDUCATION_TOPICS = ("risk_management", "leverage_explained", "technical_analysis",
                           "platform_tutorial", "crypto_basics", "trading_psychology")
PROMOTIONS = ("welcome_bonus", "deposit_bonus_50", "trading_contest", "cashback_rebate")
FIRST_NAMES = ("James", "Maria", "Ahmed", "Chen", "Olga", "Lucas", "Amara", "Sofia", "Kwame", "Anna",
               "Ravi", "Elena", "Mateo", "Aisha", "Tomasz", "Lina", "Diego", "Nadia", "Jonas", "Mei")
LAST_NAMES = ("Smith", "Garcia", "Khan", "Wang", "Ivanova", "Silva", "Okafor", "Rossi", "Mensah",
              "Nowak", "Patel", "Popescu", "Fernandez", "Haddad", "Kowalski", "Nguyen", "Santos",
              "Schmidt", "Tanaka", "Moreau")
METHODS = (("card", "Praxis", 0.55), ("bank_wire", "BankLink", 0.15), ("skrill", "Skrill", 0.12),
           ("neteller", "Neteller", 0.08), ("crypto", "CoinsPaid", 0.10))

# True churn drivers: multipliers on the daily churn hazard (log scale coefficients).
BETA_LOSS = 1.1          # per unit of realised losses / cumulative deposits (clipped to 1.5)
BETA_LOW_ENGAGEMENT = 0.9  # fewer than 10 sessions in the first 30 days after FTD
BETA_INACTIVE = 1.2      # no session in the last 7 days
BETA_FAILED_WITHDRAWAL = 1.8  # a withdrawal was declined in the last 30 days
BETA_EMPTY = 1.0         # balance below 10 USD
DRIVER_NAMES = ("losses", "low_engagement", "inactivity", "failed_withdrawal", "empty_balance")

# Traders size positions on their own money: at most this many times their approved deposits is
# put at risk, so a lucky streak does not compound into positions a retail client never takes.
RISK_DEPOSITS = 3.0

# Account managers (traders.owner): named managers look after funded traders, the biggest
# (VIP tiers) with the two senior ones; registered traders without a deposit go to a desk.
ACCOUNT_MANAGERS = ("Hannah Weber", "Omar Haddad", "Lucia Romano", "Daniel Okoye", "Priya Nair",
                    "Marek Zielinski")
SENIOR_MANAGERS = ACCOUNT_MANAGERS[:2]
RETENTION_DESK = "Retention desk"


@dataclass
class SimulatedBroker:
    """The generated tables (keyed by table name, columns named as in connectors.schema) and the
    truth table (one row per trader: persona, latent engagement, true churn and its driver)."""

    config: SimulationConfig
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    truth: pd.DataFrame | None = None


class _Events:
    """Accumulates column arrays per event table during the daily loop."""

    def __init__(self) -> None:
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {}

    def add(self, table: str, **columns: np.ndarray) -> None:
        n = len(next(iter(columns.values())))
        if n:
            self.parts.setdefault(table, []).append(columns)

    def frame(self, table: str) -> dict[str, np.ndarray]:
        """Concatenate and hand over one table's columns; the parts are released column by column."""
        parts = self.parts.pop(table, [])
        if not parts:
            return {}
        out = {}
        for k in list(parts[0]):
            out[k] = np.concatenate([p.pop(k) for p in parts])
        return out


def simulate(config: SimulationConfig, progress: Progress = _noop) -> SimulatedBroker:
    """Generate a whole broker in memory. Deterministic for a given config."""
    rng = np.random.default_rng(config.seed)
    start_s = int(datetime.combine(config.start_date(), datetime.min.time(), UTC).timestamp())
    end_s = start_s + config.days * DAY
    ev = _Events()

    progress("registrations and funnel", 0.02)
    people = _people(rng, config, start_s, end_s)
    funnel = _funnel(rng, people, end_s, ev)
    progress("trading lives", 0.15)
    lives = _trading_lives(rng, config, people, funnel, start_s, end_s, ev, progress)
    progress("assembling tables", 0.85)
    broker = _assemble(rng, config, people, funnel, lives, ev, end_s)
    progress("simulation done", 0.9)
    return broker


def _people(rng: np.random.Generator, config: SimulationConfig, start_s: int, end_s: int) -> dict:
    """Who arrives when, from where, and which hidden persona they are."""
    n = config.traders
    days = config.days
    day_idx = np.arange(days)
    calendar = pd.date_range(config.start_date(), periods=days, freq="D")
    dow = calendar.dayofweek.to_numpy()  # 0 = Monday
    dom = calendar.day.to_numpy()
    weight = (1.0 + 0.6 * day_idx / max(days - 1, 1))  # the broker grows
    weight *= np.where(dow >= 5, 0.55, 1.0)  # weekends are quiet
    weight *= np.where(dom <= 3, 1.3, 1.0)  # salaries land at the start of the month
    weight *= rng.gamma(20, 1 / 20, size=days)  # campaign noise
    weight /= weight.sum()
    day = rng.choice(days, size=n, p=weight)

    c_w = np.array([c[1] for c in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=n, p=c_w / c_w.sum())
    offset_h = np.array([c[3] for c in COUNTRIES])[country]
    # Local registration hour: mostly evenings and lunch breaks.
    # Wrap around midnight rather than clip, so no two events pile up at the same clock time.
    local_hour = np.mod(rng.normal(np.where(rng.random(n) < 0.6, 20.0, 12.5), 2.5), 24)
    reg_s = start_s + day * DAY + ((local_hour - offset_h) * 3600).astype(np.int64)
    reg_s = np.clip(reg_s, start_s, end_s - 3600) + rng.integers(0, 60, n)

    ch_w = np.array([c[1] for c in CHANNELS])
    channel = rng.choice(len(CHANNELS), size=n, p=ch_w / ch_w.sum())
    aff_quality = rng.lognormal(0, 0.35, N_AFFILIATES)
    aff_pick = np.minimum(rng.zipf(1.6, n) - 1, N_AFFILIATES - 1)
    affiliate = np.where(channel == 3, aff_pick, -1)  # channel 3 is affiliate

    # Persona depends a little on the channel: social brings gamblers, affiliates bonus hunters.
    base = np.array([p.share for p in PERSONAS])
    tilt = np.ones((len(CHANNELS), len(PERSONAS)))
    tilt[2, PERSONA_NAMES.index("crypto_gambler")] = 2.0
    tilt[3, PERSONA_NAMES.index("bonus_hunter")] = 2.5
    tilt[0, PERSONA_NAMES.index("algo_trader")] = 1.6
    probs = base * tilt
    probs /= probs.sum(axis=1, keepdims=True)
    u = rng.random(n)
    persona = (u[:, None] > np.cumsum(probs[channel], axis=1)).sum(axis=1)
    persona = np.minimum(persona, len(PERSONAS) - 1)

    # 15% of records are leads that never registered; the rest registered at reg_s.
    is_lead_only = rng.random(n) < 0.15
    lead_s = np.where(rng.random(n) < 0.45, reg_s - rng.exponential(2 * DAY, n).astype(np.int64), reg_s)
    lead_s = np.maximum(lead_s, start_s)
    # The platform and the live account's leverage are known before the first trade: a position's
    # size is bounded by equity x leverage, and cTrader's commission is part of the client's equity.
    plat_p = np.array([p.platforms for p in PERSONAS])[persona]
    platform = np.minimum((rng.random(n)[:, None] > np.cumsum(plat_p, axis=1)).sum(axis=1), 2)
    esma = np.array([c[5] for c in COUNTRIES])[country]
    leverage = np.where(esma, 30, rng.choice([100, 200, 300, 500], n, p=(0.3, 0.3, 0.2, 0.2)))
    return {
        "n": n, "reg_s": reg_s, "lead_s": lead_s, "registered": ~is_lead_only, "country": country,
        "offset_h": offset_h, "channel": channel, "affiliate": affiliate, "aff_quality": aff_quality,
        "persona": persona, "platform": platform, "leverage": leverage,
    }


def _lognormal_delay(rng: np.random.Generator, median_s: float, sigma: float, n: int) -> np.ndarray:
    return (median_s * np.exp(sigma * rng.standard_normal(n))).astype(np.int64)


def _funnel(rng: np.random.Generator, people: dict, end_s: int, ev: _Events) -> dict:
    """KYC (with rejections and resubmissions), FTD (with declined attempts), portal events."""
    n = people["n"]
    reg = people["registered"]
    reg_s = people["reg_s"]
    persona = people["persona"]
    channel = people["channel"]
    ids = np.arange(n)

    submit = reg & (rng.random(n) < np.array([0.70, 0.78, 0.65, 0.82, 0.85])[channel])
    submit_s = reg_s + _lognormal_delay(rng, 5 * 3600, 1.4, n)
    first_ok = rng.random(n) < 0.78
    review1_s = submit_s + _lognormal_delay(rng, 8 * 3600, 0.9, n)
    resubmit = ~first_ok & (rng.random(n) < 0.6)
    resubmit_s = review1_s + _lognormal_delay(rng, 2 * DAY, 0.8, n)
    second_ok = resubmit & (rng.random(n) < 0.85)
    review2_s = resubmit_s + _lognormal_delay(rng, 12 * 3600, 0.8, n)
    approved = submit & (first_ok | second_ok)
    approved_s = np.where(first_ok, review1_s, review2_s)

    submit &= submit_s < end_s
    approved &= submit & (approved_s < end_s)
    kyc_rows = [
        (submit, submit_s, "submitted"),
        (submit & first_ok & (review1_s < end_s), review1_s, "approved"),
        (submit & ~first_ok & (review1_s < end_s), review1_s, "rejected"),
        (submit & resubmit & (resubmit_s < end_s), resubmit_s, "resubmission"),
        (submit & second_ok & (review2_s < end_s), review2_s, "approved"),
        (submit & resubmit & ~second_ok & (review2_s < end_s), review2_s, "rejected"),
    ]
    for mask, ts, status in kyc_rows:
        ev.add("kyc", trader=ids[mask], ts=ts[mask], status=np.full(mask.sum(), status, dtype=object))

    # FTD: persona propensity x channel quality x affiliate quality.
    quality = np.array([c[2] for c in CHANNELS])[channel]
    quality = np.where(people["affiliate"] >= 0,
                       quality * people["aff_quality"][np.maximum(people["affiliate"], 0)], quality)
    p_ftd = np.clip(np.array([p.ftd_propensity for p in PERSONAS])[persona] * quality * 0.95, 0, 0.95)
    ftd = approved & (rng.random(n) < p_ftd)
    fast = rng.random(n) < 0.55
    ftd_delay = np.where(fast, _lognormal_delay(rng, 3 * 3600, 1.0, n),
                         rng.exponential(14 * DAY, n).astype(np.int64) + 3600)
    ftd_s = approved_s + ftd_delay
    ftd &= ftd_s < end_s - 3600

    # Portal: landing page for leads, platform downloads after approval, deposit page views
    # before the FTD and by approved non-depositors who abandon.
    landing = rng.random(n) < 0.7
    ev.add("portal", trader=ids[landing], ts=people["lead_s"][landing] - rng.integers(30, 900, landing.sum()),
           event=np.full(landing.sum(), "landing_page_view", dtype=object),
           props=np.array([json.dumps({"utm_source": CHANNELS[c][0]}) for c in range(len(CHANNELS))],
                          dtype=object)[channel[landing]])
    download = approved & (rng.random(n) < 0.75)
    dl_s = approved_s + _lognormal_delay(rng, 6 * 3600, 1.2, n)
    download &= dl_s < end_s
    ev.add("portal", trader=ids[download], ts=dl_s[download],
           event=np.full(download.sum(), "platform_download", dtype=object),
           props=np.full(download.sum(), None, dtype=object))  # filled with the platform later
    view_dep = ftd | (approved & ~ftd & (rng.random(n) < 0.45))
    view_s = np.where(ftd, ftd_s - rng.integers(120, 1800, n), approved_s + rng.integers(600, 5 * DAY, n))
    view_dep &= view_s < end_s
    ev.add("portal", trader=ids[view_dep], ts=view_s[view_dep],
           event=np.full(view_dep.sum(), "deposit_page_view", dtype=object),
           props=np.full(view_dep.sum(), json.dumps({"step": "cashier"}), dtype=object))

    # Declined attempts: some depositors fail once before the FTD; some never get through.
    declined_first = ftd & (rng.random(n) < 0.18)
    abandoned = approved & ~ftd & view_dep & (rng.random(n) < 0.25)
    dec = declined_first | abandoned
    dec_s = np.where(declined_first, ftd_s - rng.integers(60, 1200, n), view_s + rng.integers(30, 300, n))
    dec &= dec_s < end_s
    # Pre-FTD logins (demo trading, portal visits) for every registered trader.
    n_pre = np.where(reg, rng.poisson(np.where(approved, 3.0, 1.4)), 0)
    who = np.repeat(ids, n_pre)
    limit = np.where(ftd, ftd_s, np.minimum(reg_s + 21 * DAY, end_s))[who]
    pre_s = reg_s[who] + (rng.random(len(who)) * np.maximum(limit - reg_s[who], 60)).astype(np.int64)
    ev.add("session", trader=who, ts=pre_s, duration=_lognormal_delay(rng, 420, 0.9, len(who)),
           surface=rng.choice(3, len(who), p=(0.55, 0.35, 0.10)))
    return {"submit": submit, "approved": approved, "approved_s": approved_s, "ftd": ftd, "ftd_s": ftd_s,
            "declined": dec, "declined_s": dec_s, "p_ftd": p_ftd}


def _price_paths(rng: np.random.Generator, days: int) -> np.ndarray:
    """Daily close per symbol (geometric random walk), shape (symbols, days + 1)."""
    vol = np.array([s[3] for s in SYMBOLS])
    steps = rng.standard_normal((len(SYMBOLS), days + 1)) * vol[:, None] - 0.5 * vol[:, None] ** 2
    steps[:, 0] = 0
    return np.array([s[2] for s in SYMBOLS])[:, None] * np.exp(np.cumsum(steps, axis=1))


def _trading_lives(rng: np.random.Generator, config: SimulationConfig, people: dict, funnel: dict,
                   start_s: int, end_s: int, ev: _Events, progress: Progress) -> dict:
    """The day-by-day loop over every depositor: sessions, trades, money, churn, reactivation."""
    dep = np.flatnonzero(funnel["ftd"])
    m = len(dep)
    P = people["persona"][dep]
    par = {f: np.array([getattr(p, f) for p in PERSONAS])[P] for f in (
        "sessions_per_day", "trades_per_session", "hold_median_s", "hold_sigma", "ftd_median_usd",
        "redeposit_per_day", "withdraw_per_day", "base_churn_per_day", "edge", "expert")}
    lev_med = np.array([p.leverage_used[0] for p in PERSONAS])[P]
    lev_sig = np.array([p.leverage_used[1] for p in PERSONAS])[P]
    mix = np.array([p.asset_mix for p in PERSONAS])[P]
    surf_p = np.array([p.surfaces for p in PERSONAS])[P]
    esma = np.array([c[5] for c in COUNTRIES])[people["country"][dep]]
    offset_h = people["offset_h"][dep]

    engagement = rng.lognormal(0, 0.55, m)
    never_trades = rng.random(m) < 0.06
    ftd_s = funnel["ftd_s"][dep]
    ftd_day = (ftd_s - start_s) // DAY
    usd_per = _usd_per(people["country"][dep])
    ftd_amt = _cents(np.clip(par["ftd_median_usd"] * rng.lognormal(0, 0.7, m), 50, 250_000), usd_per)
    bonus_hunter = PERSONA_NAMES.index("bonus_hunter") == P
    raw_spread = people["platform"][dep] == 2  # cTrader raw-spread accounts pay a commission
    acc_leverage = people["leverage"][dep].astype(float)

    # ``balance`` is what a trader may put at risk: approved money in and out, the P&L of closed
    # positions from the day after the close, and the loss of every position from the moment it
    # opens. It never exceeds the ledger's equity (approved deposits + bonuses - withdrawals - bonus
    # cancellations + the client P&L of positions closed so far), so a position sized within
    # balance x the account's leverage is within equity x leverage whenever it opens.
    balance = ftd_amt.copy()
    cum_dep = ftd_amt.copy()
    gains: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # day -> (trader, gain) settled that day
    realised = np.zeros(m)  # client P&L incl. costs
    sess30 = np.zeros(m, dtype=np.int64)
    last_session_day = ftd_day.copy()
    failed_wd_day = np.full(m, -10_000)
    alive = np.ones(m, dtype=bool)
    churned_day = np.full(m, -1)
    driver = np.full(m, -1)
    driver_terms = np.zeros((m, len(DRIVER_NAMES)))
    reactivated_day = np.full(m, -1)

    # The FTD itself (with a welcome bonus for bonus hunters and some others).
    ev.add("txn", trader=dep, ts=ftd_s, kind=np.full(m, "deposit", dtype=object),
           status=np.full(m, "approved", dtype=object), usd=ftd_amt)
    gets_bonus = bonus_hunter | (rng.random(m) < 0.08)
    bonus_amt = _cents(ftd_amt * np.where(bonus_hunter, 1.0, 0.3), usd_per)
    ev.add("txn", trader=dep[gets_bonus], ts=ftd_s[gets_bonus] + 5,
           kind=np.full(gets_bonus.sum(), "bonus", dtype=object),
           status=np.full(gets_bonus.sum(), "approved", dtype=object), usd=bonus_amt[gets_bonus])
    balance += np.where(gets_bonus, bonus_amt, 0)
    bonus_cancelled = np.zeros(m, dtype=bool)

    paths = _price_paths(rng, config.days)
    sym_asset = np.array([s[1] for s in SYMBOLS])
    sym_contract = np.array([s[4] for s in SYMBOLS], dtype=float)
    sym_quote_usd = np.array([s[5] for s in SYMBOLS])
    sym_spread = np.array([s[6] for s in SYMBOLS])
    sym_vol = np.array([s[3] for s in SYMBOLS])
    by_asset = [np.flatnonzero(sym_asset == a) for a in range(5)]
    dow0 = (np.datetime64(config.start_date()).astype("datetime64[D]").view("int64") + 3) % 7

    for d in range(config.days):
        if d % 20 == 0:
            progress("trading lives", 0.15 + 0.7 * d / config.days)
        if settled := gains.pop(d, None):
            balance += np.bincount(np.concatenate([w for w, _ in settled]),
                                   weights=np.concatenate([g for _, g in settled]), minlength=m)
        started = (ftd_day <= d)
        idx = np.flatnonzero(started & alive)
        # Reactivation: churned traders come back with a small hazard for half a year.
        dormant = np.flatnonzero(started & ~alive & (churned_day >= 0) & (d - churned_day <= 180)
                                 & (reactivated_day < 0))
        back = dormant[rng.random(len(dormant)) < 0.0012]
        if len(back):
            alive[back] = True
            reactivated_day[back] = d
            engagement[back] *= 0.7
            failed_wd_day[back] = -10_000
            last_session_day[back] = d
            idx = np.union1d(idx, back)
        if not len(idx):
            continue
        day_s = start_s + d * DAY
        weekend = (dow0 + d) % 7 >= 5
        tenure = d - ftd_day[idx]

        # Sessions: persona rate x engagement, fading with tenure, lower on weekends.
        rate = par["sessions_per_day"][idx] * engagement[idx] * np.exp(-tenure / 400) * (0.5 if weekend else 1.0)
        first_day = tenure == 0
        n_sess = rng.poisson(rate) + first_day  # everyone logs in on the FTD day
        has = n_sess > 0
        last_session_day[idx[has]] = d
        sess30[idx] += np.where(tenure < 30, n_sess, 0)
        s_tr = np.repeat(idx, n_sess)
        local_h = np.mod(rng.normal(np.where(rng.random(len(s_tr)) < 0.55, 20.5, 9.5), 2.2), 24)
        # Wrapped into the UTC day, so a day's trades and money all fall inside it: the balance a
        # position is sized on is then the ledger's at some moment of that day.
        s_start = day_s + np.mod(((local_h - offset_h[s_tr]) * 3600).astype(np.int64), DAY)
        s_start = np.where(s_start <= ftd_s[s_tr], ftd_s[s_tr] + rng.integers(60, 3600, len(s_tr)), s_start)
        s_dur = _lognormal_delay(rng, 900, 0.9, len(s_tr)) + 30
        surface = (rng.random(len(s_tr))[:, None] > np.cumsum(surf_p[s_tr], axis=1)).sum(axis=1)
        ev.add("session", trader=dep[s_tr], ts=s_start, duration=s_dur, surface=np.minimum(surface, 2))

        # Withdrawals: cash out profits; bonus hunters cash out early. Some requests fail. They come
        # before the day's trading, which then has only what is left.
        in_profit = balance[idx] > 1.3 * cum_dep[idx]
        p_wd = par["withdraw_per_day"][idx] * np.where(in_profit, 4.0, 0.4) * has
        p_wd = np.where(bonus_hunter[idx] & (tenure < 14), 0.15, p_wd)
        wd_now = (rng.random(len(idx)) < p_wd) & (balance[idx] > 20)
        wi = idx[wd_now]
        if len(wi):
            amt = _cents(balance[wi] * rng.uniform(0.3, 0.95, len(wi)), usd_per[wi])
            ts = np.maximum(day_s + rng.integers(0, DAY, len(wi)), ftd_s[wi] + 900)
            failed = rng.random(len(wi)) < np.where(bonus_hunter[wi], 0.3, 0.07)
            ev.add("portal", trader=dep[wi], ts=ts - rng.integers(60, 600, len(wi)),
                   event=np.full(len(wi), "withdrawal_page_view", dtype=object),
                   props=np.full(len(wi), None, dtype=object))
            ev.add("txn", trader=dep[wi], ts=ts, kind=np.full(len(wi), "withdrawal", dtype=object),
                   status=np.where(failed, "declined", "approved").astype(object), usd=amt)
            failed_wd_day[wi[failed]] = d
            balance[wi[~failed]] -= amt[~failed]
            # Withdrawing before the bonus's volume requirement is met forfeits the bonus.
            forfeit = wi[~failed & gets_bonus[wi] & ~bonus_cancelled[wi] & (tenure[wd_now] < 30)]
            if len(forfeit):
                bonus_cancelled[forfeit] = True
                take = _cents(np.minimum(bonus_amt[forfeit], np.floor(balance[forfeit] * 100) / 100),
                              usd_per[forfeit])
                ev.add("txn", trader=dep[forfeit], ts=np.maximum(day_s + rng.integers(0, DAY, len(forfeit)),
                                                                 ftd_s[forfeit] + 900),
                       kind=np.full(len(forfeit), "bonus_cancel", dtype=object),
                       status=np.full(len(forfeit), "approved", dtype=object), usd=take)
                balance[forfeit] -= take

        # Trades: during sessions (expert advisors trade on their own on weekdays).
        tps = par["trades_per_session"][idx] * engagement[idx] ** 0.5
        # At the weekend only crypto trades; personas trade it as much as it is in their mix.
        n_tr = rng.poisson(tps * n_sess * (mix[idx, 1] if weekend else 1.0))
        expert = par["expert"][idx].astype(bool)
        if not weekend:
            n_tr = np.where(expert, rng.poisson(ALGO_TRADES_PER_DAY * engagement[idx] ** 0.5), n_tr)
        n_tr = np.where(never_trades[idx] | (balance[idx] < 5), 0, n_tr)
        last_open = np.zeros(len(idx), dtype=np.int64)  # the day's latest opening per trader
        if n_tr.sum():
            t_loc = np.repeat(np.arange(len(idx)), n_tr)
            k = len(t_loc)
            # Anchor each trade in one of that trader's sessions of the day.
            first_sess = np.concatenate(([0], np.cumsum(n_sess)[:-1]))
            pick = first_sess[t_loc] + (rng.random(k) * np.maximum(n_sess[t_loc], 1)).astype(np.int64)
            pick = np.minimum(pick, max(len(s_start) - 1, 0))
            anchor = np.where(n_sess[t_loc] > 0, s_start[pick] if len(s_start) else day_s, day_s)
            anchor = np.where(expert[t_loc], day_s + rng.integers(0, DAY, k), anchor)
            t_open = np.minimum(np.maximum(anchor + rng.integers(5, 600, k), ftd_s[idx[t_loc]] + 30),
                                day_s + DAY - 1)
            # Each trader's positions in the order they open: each is sized on what the ones before left.
            order = np.lexsort((t_open, t_loc))
            t_loc, t_open = t_loc[order], t_open[order]
            t_tr = idx[t_loc]
            asset = (rng.random(k)[:, None] > np.cumsum(mix[t_tr], axis=1)).sum(axis=1)
            asset = np.minimum(asset, 4)
            if weekend:  # only crypto trades at the weekend
                asset[:] = 1
            sym = np.empty(k, dtype=np.int64)
            for a in range(5):
                sel = asset == a
                if sel.any():
                    sym[sel] = rng.choice(by_asset[a], sel.sum())
            hold = np.maximum(
                (par["hold_median_s"][t_tr] * np.exp(par["hold_sigma"][t_tr] * rng.standard_normal(k))),
                3).astype(np.int64)
            # Effective leverage (notional / what the trader puts at risk), capped for ESMA clients
            # and never above the account's leverage.
            lev = lev_med[t_tr] * np.exp(lev_sig[t_tr] * rng.standard_normal(k))
            lev = np.minimum(np.where(esma[t_tr], np.minimum(lev, 25.0), lev), acc_leverage[t_tr])
            day_frac = (t_open - day_s) / DAY
            price = paths[sym, d] * (1 + sym_vol[sym] * np.sqrt(np.clip(day_frac, 0, 1)) * 0.3
                                     * rng.standard_normal(k))
            unit_usd = sym_contract[sym] * price * sym_quote_usd[sym]
            ret = (par["edge"][t_tr] - sym_spread[sym]
                   + sym_vol[sym] * np.sqrt(hold / DAY) * rng.standard_normal(k))
            side = np.where(rng.random(k) < 0.58, 1, -1)
            nights = hold // DAY
            # Raw-spread cTrader accounts pay 7 USD per lot round turn on FX and metals.
            costed = raw_spread[t_tr] & np.isin(sym_asset[sym], [0, 3])
            lots, profit, swap, commission, at_risk = (np.zeros(k) for _ in range(5))
            stop = np.zeros(k, dtype=bool)
            starts = np.flatnonzero(np.concatenate(([True], t_loc[1:] != t_loc[:-1])))
            sizes = np.diff(np.append(starts, k))
            for r in range(int(sizes.max())):
                sel = starts[sizes > r] + r  # every trader's r-th position of the day
                g = t_tr[sel]
                # Traders size on their own money: winnings beyond RISK_DEPOSITS x their deposits are
                # not put at risk. A cent of headroom keeps rounding inside the limit.
                risk = np.maximum(np.minimum(balance[g], RISK_DEPOSITS * cum_dep[g]) - 0.01, 0)
                size = np.floor(risk * lev[sel] / unit_usd[sel] * 100) / 100  # whole hundredths of a lot, down
                size = np.where(size >= 0.01, size, 0.0)  # too little equity for the smallest position
                notional = size * unit_usd[sel]
                p = np.round(notional * ret[sel], 2)
                sw = -np.round(notional * 0.00008 * nights[sel], 2)
                cm = np.where(costed[sel], -np.round(7.0 * size, 2), 0.0)
                # Stop-out: a position is closed before it loses more than the balance (negative
                # balance protection).
                out = (size > 0) & (balance[g] + p + sw + cm < 0)
                p = np.where(out, np.ceil((-balance[g] - sw - cm) * 100) / 100, p)
                balance[g] += np.minimum(p + sw + cm, 0)
                lots[sel], profit[sel], swap[sel], commission[sel], stop[sel], at_risk[sel] = size, p, sw, cm, out, risk
            traded = lots > 0
            pnl = profit + swap + commission
            realised[idx] += np.bincount(t_loc, weights=pnl, minlength=len(idx))
            t_close = t_open + hold
            # A gain reaches the balance on the day after the position closes.
            settle = (t_close - start_s) // DAY + 1
            won = np.flatnonzero((pnl > 0) & (settle < config.days))
            if len(won):
                won = won[np.argsort(settle[won], kind="stable")]
                days_, first_of = np.unique(settle[won], return_index=True)
                for day_, part in zip(days_, np.split(won, first_of[1:]), strict=True):
                    gains.setdefault(int(day_), []).append((t_tr[part], pnl[part]))
            np.maximum.at(last_open, t_loc[traded], t_open[traded])
            notional = lots * unit_usd
            reason = np.where(stop, 3, np.where(
                ret < -sym_vol[sym] * 0.5 * np.sqrt(hold / DAY),
                np.where(rng.random(k) < 0.45, 1, 0),
                np.where(ret > sym_vol[sym] * 0.5 * np.sqrt(hold / DAY), np.where(rng.random(k) < 0.4, 2, 0), 0)))
            channel = np.where(expert[t_loc], 3, rng.choice(3, k, p=(0.5, 0.2, 0.3)))
            close_price = price * (1 + side * ret)
            ok = traded & (t_close < end_s)
            ev.add("trade", trader=dep[t_tr][ok], opened=t_open[ok], closed=t_close[ok], sym=sym[ok],
                   side=side[ok], lots=lots[ok], notional=np.round(notional[ok], 2),
                   open_price=np.round(price[ok], 5), close_price=np.round(close_price[ok], 5),
                   profit=profit[ok], swap=swap[ok], commission=commission[ok],
                   lev=np.round(notional[ok] / np.maximum(at_risk[ok], 1.0), 2),
                   reason=reason[ok], channel=channel[ok])

        # Redeposits: more likely after the balance has been eaten by losses.
        low = balance[idx] < 0.2 * cum_dep[idx]
        p_dep = par["redeposit_per_day"][idx] * engagement[idx] ** 0.5 * np.where(low, 3.0, 1.0) * has
        dep_now = rng.random(len(idx)) < p_dep
        di = idx[dep_now]
        if len(di):
            amt = _cents(np.clip(par["ftd_median_usd"][di] * 0.8 * rng.lognormal(0, 0.6, len(di)), 20, 250_000),
                         usd_per[di])
            ts = day_s + rng.integers(0, DAY, len(di))
            ts = np.minimum(np.maximum(ts, ftd_s[di] + 600), day_s + DAY - 1)  # credited from tomorrow on
            ev.add("portal", trader=dep[di], ts=ts - rng.integers(60, 900, len(di)),
                   event=np.full(len(di), "deposit_page_view", dtype=object),
                   props=np.full(len(di), json.dumps({"step": "cashier"}), dtype=object))
            declined = rng.random(len(di)) < 0.08
            ev.add("txn", trader=dep[di][declined], ts=ts[declined] - 120,
                   kind=np.full(declined.sum(), "deposit", dtype=object),
                   status=np.full(declined.sum(), "declined", dtype=object), usd=amt[declined])
            # A few deposits of the last two hours are still pending at the PSP, and a few are
            # charged back; neither ever reaches the balance.
            status = np.where((ts > end_s - 2 * 3600) & (rng.random(len(di)) < 0.5), "pending",
                              np.where(rng.random(len(di)) < 0.004, "reversed", "approved")).astype(object)
            ev.add("txn", trader=dep[di], ts=ts, kind=np.full(len(di), "deposit", dtype=object),
                   status=status, usd=amt)
            credited = status == "approved"
            balance[di[credited]] += amt[credited]
            cum_dep[di[credited]] += amt[credited]

        # Engagement content: education and promotions seen in sessions.
        edu = has & (rng.random(len(idx)) < 0.04)
        ei = idx[edu]
        ev.add("portal", trader=dep[ei], ts=day_s + rng.integers(0, DAY, len(ei)),
               event=np.full(len(ei), "education_view", dtype=object),
               props=np.array([json.dumps({"topic": t}) for t in PORTAL_EDUCATION_TOPICS], dtype=object)[
                   rng.integers(0, len(PORTAL_EDUCATION_TOPICS), len(ei))])
        promo = has & (rng.random(len(idx)) < 0.03)
        pi = idx[promo]
        ev.add("portal", trader=dep[pi], ts=day_s + rng.integers(0, DAY, len(pi)),
               event=np.full(len(pi), "promotion_view", dtype=object),
               props=np.array([json.dumps({"promo": p}) for p in PROMOTIONS], dtype=object)[
                   rng.integers(0, len(PROMOTIONS), len(pi))])

        # Churn hazard from what happened to the trader (the true drivers).
        terms = np.column_stack([
            BETA_LOSS * np.clip(-realised[idx] / np.maximum(cum_dep[idx], 1), 0, 1.5),
            BETA_LOW_ENGAGEMENT * ((tenure >= 30) & (sess30[idx] < 10)),
            BETA_INACTIVE * (d - last_session_day[idx] >= 7),
            BETA_FAILED_WITHDRAWAL * (d - failed_wd_day[idx] <= 30),
            BETA_EMPTY * (balance[idx] < 10),
        ])
        hazard = par["base_churn_per_day"][idx] / engagement[idx] ** 0.5 * np.exp(terms.sum(axis=1))
        gone = rng.random(len(idx)) < np.clip(hazard, 0, 0.5)
        gone &= tenure > 0
        gi = idx[gone]
        if len(gi):
            alive[gi] = False
            first = churned_day[gi] < 0
            churned_day[gi[first]] = d
            t = terms[gone]
            driver[gi[first]] = np.where(t.max(axis=1) > 0.05, t.argmax(axis=1), -1)[first]
            driver_terms[gi[first]] = t[first]
            # Some leavers take their money with them on the way out.
            out = gi[(balance[gi] > 50) & (rng.random(len(gi)) < 0.45)]
            if len(out):
                # After the day's last opening: the positions opened that day had the money.
                ts = np.maximum(np.maximum(day_s + rng.integers(0, DAY, len(out)), ftd_s[out] + 900),
                                last_open[np.searchsorted(idx, out)] + 60)
                amt = _cents(np.floor(balance[out] * 100) / 100, usd_per[out])
                ev.add("txn", trader=dep[out], ts=ts, kind=np.full(len(out), "withdrawal", dtype=object),
                       status=np.full(len(out), "approved", dtype=object), usd=amt)
                balance[out] -= amt

    progress("trading lives", 0.85)
    return {"dep": dep, "engagement": engagement, "sess30": sess30, "churned_day": churned_day,
            "driver": driver, "driver_terms": driver_terms, "reactivated_day": reactivated_day,
            "cum_dep": cum_dep, "balance": balance, "realised": realised, "ftd_amt": ftd_amt,
            "alive": alive, "start_s": start_s}


def _usd_per(country: np.ndarray) -> np.ndarray:
    """USD per unit of each trader's account currency (their country's)."""
    return np.array([USD_PER[c[4]] for c in COUNTRIES])[country]


def _cents(usd: np.ndarray, usd_per: np.ndarray) -> np.ndarray:
    """The USD amount the ledger records for ``usd``: whole cents of the account currency, then
    whole cents of USD (as :func:`_assemble` writes them), so the balance the simulation keeps is
    the ledger's to the cent."""
    return np.round(np.round(usd / usd_per, 2) * usd_per, 2)


def _to_ts(seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(seconds, dtype=np.int64) * 1_000_000).astype("datetime64[us]")


def _assemble(rng: np.random.Generator, config: SimulationConfig, people: dict, funnel: dict,
              lives: dict, ev: _Events, end_s: int) -> SimulatedBroker:
    """Turn the accumulated arrays into DataFrames shaped like connectors.schema tables."""
    n = people["n"]
    ids = np.arange(n)
    trader_id = ids + 1
    persona = people["persona"]
    country_code = np.array([c[0] for c in COUNTRIES], dtype=object)[people["country"]]
    currency = np.array([c[4] for c in COUNTRIES], dtype=object)[people["country"]]
    usd_per = np.vectorize(USD_PER.get)(currency).astype(float)
    reg = people["registered"]

    # Final net deposits per trader decide the VIP overlay.
    txn = ev.frame("txn")
    t_trader = txn["trader"]
    signed = np.where((txn["status"] == "approved") & (txn["kind"] == "deposit"), txn["usd"],
                      np.where((txn["status"] == "approved") & (txn["kind"] == "withdrawal"), -txn["usd"], 0))
    net = np.bincount(t_trader, weights=signed, minlength=n)
    vip = np.select([net >= 100_000, net >= 20_000, net >= 5_000], ["platinum", "gold", "silver"], "")
    vip = np.where(vip == "", None, vip).astype(object)
    # Account managers: funded traders get a named one (VIPs a senior one), registered traders who
    # never deposited the retention desk, leads nobody.
    funded = funnel["ftd"]
    managers = np.array(ACCOUNT_MANAGERS, dtype=object)
    owner = np.where(vip != None, managers[rng.integers(0, len(SENIOR_MANAGERS), n)],  # noqa: E711
                     managers[rng.integers(len(SENIOR_MANAGERS), len(ACCOUNT_MANAGERS), n)])
    owner = np.where(funded, owner, np.where(reg, RETENTION_DESK, None)).astype(object)

    first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    is_test = rng.random(n) < 0.003
    id_str = pd.Series(trader_id).astype(str)
    email = (pd.Series(first).str.lower() + "." + pd.Series(last).str.lower() + id_str
             + np.where(is_test, "@test.traderlens.example", "@mail.example")).to_numpy(dtype=object)
    kyc_status = np.select(
        [funnel["approved"], funnel["submit"] & ~funnel["approved"]], ["approved", "rejected"], "none")
    pending = funnel["submit"] & ~funnel["approved"]
    kyc_status = np.where(pending & (rng.random(n) < 0.3), "submitted", kyc_status)
    channel_names = np.array([c[0] for c in CHANNELS], dtype=object)
    sources = np.array([c[3][0] for c in CHANNELS], dtype=object)[people["channel"]]
    alt = rng.random(n)
    for ci, (_, _, _, srcs) in enumerate(CHANNELS):
        sel = people["channel"] == ci
        sources[sel] = np.array(srcs, dtype=object)[(alt[sel] * len(srcs)).astype(int)]
    affiliate = np.where(people["affiliate"] >= 0,
                         "IB" + pd.Series(1001 + np.maximum(people["affiliate"], 0)).astype(str), None)
    mobile_user = rng.random(n) < 0.55
    traders = pd.DataFrame({
        "trader_id": trader_id,
        "external_id": ("SIM-" + id_str.str.zfill(7)).to_numpy(dtype=object),
        "lead_at": _to_ts(people["lead_s"]),
        "registered_at": pd.Series(_to_ts(people["reg_s"])).where(reg),
        "first_name": first, "last_name": last, "email": email,
        "phone": ("+" + pd.Series(rng.integers(10**9, 10**10, n)).astype(str)).to_numpy(dtype=object),
        "country": country_code,
        "language": np.vectorize(LANGUAGES.get)(country_code).astype(object),
        "timezone": np.array([c[2] for c in COUNTRIES], dtype=object)[people["country"]],
        "acquisition_channel": channel_names[people["channel"]],
        "campaign_source": sources,
        "affiliate_id": affiliate,
        "kyc_status": np.where(reg, kyc_status, "none").astype(object),
        "kyc_approved_at": pd.Series(_to_ts(funnel["approved_s"])).where(funnel["approved"]),
        "vip_tier": vip,
        "owner": owner,
        "is_test": is_test,
        "is_blocked": rng.random(n) < 0.005,
        "consent_email": rng.random(n) < 0.85,
        "consent_sms": rng.random(n) < 0.55,
        "consent_push": mobile_user & (rng.random(n) < 0.8),
        "consent_whatsapp": rng.random(n) < 0.35,
        "source": "simulator",
    })

    # Accounts: an optional demo at registration, a live account at KYC approval.
    platform, leverage = people["platform"], people["leverage"]
    demo = reg & (rng.random(n) < 0.5)
    live = funnel["approved"]
    acc_owner = np.concatenate([ids[live], ids[demo]])
    acc_is_demo = np.concatenate([np.zeros(live.sum(), bool), np.ones(demo.sum(), bool)])
    acc_opened = np.concatenate([funnel["approved_s"][live] + 60, people["reg_s"][demo] + 120])
    na = len(acc_owner)
    account_id = np.arange(1, na + 1)
    acc_platform = np.array(["MT4", "MT5", "cTrader"], dtype=object)[platform[acc_owner]]
    login = (np.where(acc_is_demo, 50_000_000, 10_000_000) + account_id).astype(str)
    raw_group = platform[acc_owner] == 2
    accounts = pd.DataFrame({
        "account_id": account_id,
        "trader_id": acc_owner + 1,
        "platform": acc_platform,
        "server": np.where(acc_is_demo, "TraderLens-Demo", "TraderLens-Live01").astype(object),
        "login": login.astype(object),
        "account_group": np.where(acc_is_demo, "demo\\standard",
                                  np.where(raw_group, "real\\raw", "real\\standard")).astype(object),
        "currency": currency[acc_owner],
        "leverage": leverage[acc_owner],
        "is_demo": acc_is_demo,
        "opened_at": _to_ts(acc_opened),
    })
    live_account = np.zeros(n, dtype=np.int64)
    live_account[ids[live]] = account_id[: live.sum()]

    # KYC events in time order.
    kyc = ev.frame("kyc")
    order = np.lexsort((kyc["ts"], kyc["trader"]))
    k_id = np.arange(1, len(order) + 1)
    kyc_events = pd.DataFrame({
        "kyc_event_id": k_id,
        "trader_id": kyc["trader"][order] + 1,
        "status": kyc["status"][order],
        "reason": np.where(kyc["status"][order] == "rejected", "document unreadable", None).astype(object),
        "occurred_at": _to_ts(kyc["ts"][order]),
    })

    # Transactions: declined pre-FTD attempts plus everything from the loop; amounts in the
    # account currency, bonus cancellations when a bonus hunter withdraws.
    dec = funnel["declined"]
    dec_amt = np.round(np.clip(np.array([p.ftd_median_usd for p in PERSONAS])[persona[dec]]
                               * rng.lognormal(0, 0.6, dec.sum()), 50, 50_000), 2)
    t_trader = np.concatenate([ids[dec], txn["trader"]])
    t_ts = np.concatenate([funnel["declined_s"][dec], txn["ts"]])
    t_kind = np.concatenate([np.full(dec.sum(), "deposit", dtype=object), txn["kind"]])
    t_status = np.concatenate([np.full(dec.sum(), "declined", dtype=object), txn["status"]])
    t_usd = np.concatenate([dec_amt, txn["usd"]])
    keep = t_ts < end_s
    t_trader, t_ts, t_kind, t_status, t_usd = (a[keep] for a in (t_trader, t_ts, t_kind, t_status, t_usd))
    order = np.lexsort((t_ts, t_trader))
    t_trader, t_ts, t_kind, t_status, t_usd = (a[order] for a in (t_trader, t_ts, t_kind, t_status, t_usd))
    txn_id = np.arange(1, len(order) + 1)
    t_ccy = currency[t_trader]
    t_amount = np.round(t_usd / usd_per[t_trader], 2)
    t_usd = np.round(t_amount * usd_per[t_trader], 2)
    m_p = np.array([x[2] for x in METHODS])
    method_i = rng.choice(len(METHODS), len(order), p=m_p / m_p.sum())
    money_move = np.isin(t_kind, ["deposit", "withdrawal"])
    transactions = pd.DataFrame({
        "txn_id": txn_id,
        "trader_id": t_trader + 1,
        "account_id": pd.array(np.where(live_account[t_trader] > 0, live_account[t_trader], 0), dtype="Int64"),
        "kind": t_kind, "status": t_status,
        "amount": t_amount, "currency": t_ccy, "amount_usd": t_usd,
        "method": np.where(money_move, np.array([x[0] for x in METHODS], dtype=object)[method_i], None),
        "psp": np.where(money_move, np.array([x[1] for x in METHODS], dtype=object)[method_i], None),
        "comment": None,
        "created_at": _to_ts(t_ts),
    })
    transactions.loc[transactions["account_id"] == 0, "account_id"] = pd.NA

    # Trades.
    tr = ev.frame("trade")
    order = np.lexsort((tr["opened"], tr["trader"]))
    trade_id = np.arange(1, len(order) + 1)
    sym = tr["sym"][order]
    owner = tr["trader"][order]
    lots = tr["lots"][order]
    trades = pd.DataFrame({
        "trade_id": trade_id,
        "account_id": live_account[owner],
        "trader_id": owner + 1,
        # Low-cardinality text as categoricals: 1 byte a row instead of an 8-byte object pointer.
        "symbol": pd.Categorical.from_codes(sym, [s[0] for s in SYMBOLS]),
        "asset_class": pd.Categorical.from_codes(np.array([s[1] for s in SYMBOLS])[sym], ASSET_CLASS_NAMES),
        "side": pd.Categorical.from_codes((tr["side"][order] < 0).astype(np.int8), ["buy", "sell"]),
        "lots": lots,
        "notional_usd": tr["notional"][order],
        "opened_at": _to_ts(tr["opened"][order]),
        "closed_at": _to_ts(tr["closed"][order]),
        "open_price": tr["open_price"][order],
        "close_price": tr["close_price"][order],
        "profit_usd": tr["profit"][order],
        "commission_usd": tr["commission"][order],
        "swap_usd": tr["swap"][order],
        "leverage_used": tr["lev"][order],
        "close_reason": pd.Categorical.from_codes(tr["reason"][order], ["client", "sl", "tp", "stop_out"]),
        "channel": pd.Categorical.from_codes(tr["channel"][order], ["desktop", "web", "mobile", "expert"]),
    }, copy=False)
    del tr

    # Sessions.
    se = ev.frame("session")
    keep = se["ts"] < end_s
    order = np.lexsort((se["ts"][keep], se["trader"][keep]))
    # One person cannot start two sessions in the same second: nudge the rare collisions apart.
    s_ts, s_tr = se["ts"][keep][order], se["trader"][keep][order]
    while (clash := np.flatnonzero((s_tr[1:] == s_tr[:-1]) & (s_ts[1:] <= s_ts[:-1])) + 1).size:
        s_ts[clash] = s_ts[clash - 1] + 1
    se["ts"][np.flatnonzero(keep)[order]] = s_ts
    s_id = np.arange(1, len(order) + 1)
    sessions = pd.DataFrame({
        "session_id": s_id,
        "trader_id": se["trader"][keep][order] + 1,
        "started_at": _to_ts(se["ts"][keep][order]),
        "duration_s": se["duration"][keep][order].astype(np.int64),
        "surface": pd.Categorical.from_codes(se["surface"][keep][order], ["web", "mobile", "desktop"]),
    }, copy=False)
    del se

    # Portal events; platform downloads name the trader's platform.
    po = ev.frame("portal")
    props = po["props"].copy()
    dl = po["event"] == "platform_download"
    plat_names = np.array([json.dumps({"platform": p}) for p in ("MT4", "MT5", "cTrader")], dtype=object)
    props[dl] = plat_names[platform[po["trader"][dl]]]
    keep = (po["ts"] < end_s) & (po["ts"] >= people["lead_s"][po["trader"]] - DAY)
    order = np.lexsort((po["ts"][keep], po["trader"][keep]))
    p_id = np.arange(1, len(order) + 1)
    portal_events = pd.DataFrame({
        "portal_event_id": p_id,
        "trader_id": po["trader"][keep][order] + 1,
        "event": po["event"][keep][order],
        "occurred_at": _to_ts(po["ts"][keep][order]),
        "properties": props[keep][order],
    })

    dep = lives["dep"]
    churned = lives["churned_day"] >= 0
    start_s = lives["start_s"]
    driver_names = np.array(("baseline", *DRIVER_NAMES), dtype=object)
    truth = pd.DataFrame({"trader_id": trader_id, "persona": np.array(PERSONA_NAMES, dtype=object)[persona],
                          "p_ftd": np.round(funnel["p_ftd"], 4)})
    extra = pd.DataFrame({
        "trader_id": dep + 1,
        "engagement": np.round(lives["engagement"], 4),
        "sessions_first_30d": lives["sess30"],
        "churned_at": pd.Series(_to_ts(start_s + lives["churned_day"] * DAY)).where(churned),
        "churn_driver": pd.Series(driver_names[lives["driver"] + 1]).where(churned),
        "reactivated_at": pd.Series(_to_ts(start_s + lives["reactivated_day"] * DAY)).where(
            lives["reactivated_day"] >= 0),
        **{f"driver_{name}": np.round(lives["driver_terms"][:, i], 4) for i, name in enumerate(DRIVER_NAMES)},
    })
    truth = truth.merge(extra, on="trader_id", how="left")
    return SimulatedBroker(config=config, tables={
        "traders": traders, "accounts": accounts, "kyc_events": kyc_events,
        "transactions": transactions, "trades": trades, "sessions": sessions,
        "portal_events": portal_events,
    }, truth=truth)


# Simulator rows carry external ids "<prefix><id>", derived while writing to save memory.
EXTERNAL_ID_PREFIXES = {"traders": "SIM-", "accounts": "SIM-ACC-", "kyc_events": "SIM-KYC-",
                        "transactions": "SIM-TXN-", "trades": "SIM-TRD-", "sessions": "SIM-SES-",
                        "portal_events": "SIM-PE-"}

truth_metadata = sa.MetaData(schema=TRUTH_SCHEMA)
truth_traders = sa.Table(
    "traders", truth_metadata,
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("persona", sa.String(32), nullable=False),
    sa.Column("p_ftd", sa.Double),
    sa.Column("engagement", sa.Double),
    sa.Column("sessions_first_30d", sa.Integer),
    sa.Column("churned_at", sa.DateTime),
    sa.Column("churn_driver", sa.String(32)),
    sa.Column("reactivated_at", sa.DateTime),
    *[sa.Column(f"driver_{name}", sa.Double) for name in DRIVER_NAMES],
)


@dataclass(frozen=True)
class SeedSummary:
    """What a seed run wrote: rows per table and the seconds each stage took."""

    config: SimulationConfig
    rows: dict[str, int]
    simulate_s: float
    write_s: float


def seed_database(engine: sa.Engine, config: SimulationConfig, *, replace: bool = False,
                  progress: Progress = _noop) -> SeedSummary:
    """Fill ``engine``'s database from the simulator in one transaction.

    Refuses (DatabaseNotEmpty) when traders already exist unless ``replace`` is set, in which
    case every data row is deleted first (on DuckDB in a step of its own, see below). The truth
    table goes to the ``simulator_truth`` schema.
    Secondary indexes are dropped during the load and rebuilt after it, which is several times
    faster than maintaining them row by row on both backends.
    """
    upgrade_schema(engine)
    duckdb = engine.dialect.name == "duckdb"
    with engine.connect() as conn:
        existing = conn.execute(sa.select(sa.func.count()).select_from(schema.traders)).scalar_one()
    if existing and not replace:
        raise DatabaseNotEmpty(
            f"the database already holds {existing} traders; seeding replaces everything, "
            "so pass --replace to confirm")
    t0 = time.perf_counter()
    broker = simulate(config, progress)
    t1 = time.perf_counter()
    rows: dict[str, int] = {}
    if existing and duckdb:
        # DuckDB cannot delete parents and children in one transaction (eager FK checks), so a
        # replacing seed there empties the tables first; PostgreSQL replaces atomically below.
        reset_data_per_table(engine)
    with engine.begin() as conn, write_lock(conn):
        if not duckdb:
            reset_data(conn)
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {TRUTH_SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {TRUTH_SCHEMA}"))
        truth_metadata.create_all(conn)
        secondary = [ix for t in (*schema.DATA_TABLES, *schema.ROLLUP_TABLES) for ix in t.indexes]
        for ix in secondary:
            ix.drop(conn)
        # PostgreSQL checks a foreign key per copied row (two per trade); adding the constraints
        # back after the load validates each in one join, a fraction of the time. The transaction
        # still holds: a violation fails the seed and nothing of it stays. (DuckDB cannot drop a
        # constraint, and checks keys cheaply.)
        inspector = None if duckdb else sa.inspect(conn)
        foreign_keys = [] if inspector is None else [(t.name, fk) for t in schema.DATA_TABLES
                                                     for fk in inspector.get_foreign_keys(t.name)]
        for table_name, fk in foreign_keys:
            conn.execute(sa.text(f'ALTER TABLE "{table_name}" DROP CONSTRAINT "{fk["name"]}"'))
        for i, table in enumerate(schema.DATA_TABLES):
            progress(f"writing {table.name}", 0.9 + 0.08 * i / len(schema.DATA_TABLES))
            rows[table.name] = bulk_insert(conn, table, broker.tables[table.name],
                                           external_id_prefix=EXTERNAL_ID_PREFIXES[table.name])
            del broker.tables[table.name]  # free memory as we go
        bulk_insert(conn, truth_traders, broker.truth)
        progress("rolling up daily activity and trading", 0.97)
        refresh_rollups(conn)
        progress("building indexes", 0.98)
        for ix in secondary:
            ix.create(conn)
        for table_name, fk in foreign_keys:
            conn.execute(sa.text(
                f'ALTER TABLE "{table_name}" ADD CONSTRAINT "{fk["name"]}" FOREIGN KEY '
                f'({", ".join(fk["constrained_columns"])}) REFERENCES "{fk["referred_table"]}" '
                f'({", ".join(fk["referred_columns"])})'))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))  # statistics, visibility map and hint bits before the first read
    progress("done", 1.0)
    return SeedSummary(config=config, rows=rows, simulate_s=t1 - t0, write_s=time.perf_counter() - t1)
