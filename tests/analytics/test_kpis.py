"""Executive KPIs on a tiny hand-built broker where every figure is worked out by hand below.

The current period is March 2026 (31 days); the previous one is 29 Jan - 28 Feb 2026. The data
ends with a trade opened on 30 Apr 2026 12:00, so the 30-day cohort cut-off is 31 Mar 12:00 and
the 7-day one 23 Apr 12:00.

Traders (country, platform, VIP):
  T1  DE MT5 (and an older cTrader demo)  registered 2 Mar, KYC 3 Mar, FTD 5 Mar $1,000 (3 days),
      redeposit 20 Mar $500, declined deposit, withdrawal $300, declined withdrawal, bonus $200
      and bonus cancel $50; fx trade 6 Mar (+50, commission -7), crypto 10->12 Mar (-300, swap -2.5)
  T2  GB MT4 gold  registered 10 Mar, KYC 11 Mar, FTD 25 Mar $2,000 (15 days), reversed $700,
      adjustment, IB commission, fee; indices trade 26->27 Mar (+120, swap -1)
  T3  DE MT4      registered 15 Mar, nothing else
  T4  FR cTrader  registered 31 Mar 18:00 (too young for the 30-day cohort), FTD 2 Apr
  T5  DE MT5      registered 1 Feb, KYC 2 Feb, FTD 20 Feb $400 (19 days), redeposit 10 Apr (49 days);
      fx trade 21 Feb (-20); nothing in March -> churned
  T6  DE MT5      old trader: trades 15 Mar 2025 (-1000), 10 Jan, 10 Feb, 20 Mar (+10 each),
      30 Apr; withdrawal 12 Feb $150
  T7  GB MT4      old: trades 5 Jan, 15 Feb (-5 each); login 15 Mar -> not churned
  T8  DE MT5      old: trades 20 Jan, 25 Feb (0 each); deposit 10 Mar $300 -> not churned
  T9  DE          test account: registration and deposit in March (left out by default)
  T10 GB          old: trade 15 Jan (-100) -> churned in the previous period
  T11 FR          old: trade 2 Jan (+100), login 10 Feb
  T12 GB          old: commodities trade opened 27 Feb, closed 1 Mar (+5); declined deposit 15 Mar
                  -> active in both periods, but churned by 31 Mar
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from analytics.filters import TraderFilter
from analytics.kpis import (
    GROUPS,
    NOTES,
    SPECS,
    Kpi,
    compute_breakdown,
    compute_kpi_trend,
    compute_kpis,
    compute_volume_by_asset_class,
)
from analytics.periods import DateRange, comparison_range
from connectors.rollups import refresh_rollups
from connectors.schema import accounts, sessions, traders, trades, transactions

MARCH = DateRange(date(2026, 3, 1), date(2026, 3, 31))

TRADERS = [
    # id, registered_at, country, channel, affiliate, vip, kyc_approved_at, is_test
    (1, datetime(2026, 3, 2, 10), "DE", "organic", None, None, datetime(2026, 3, 3), False),
    (2, datetime(2026, 3, 10, 12), "GB", "affiliate", "IB1", "gold", datetime(2026, 3, 11), False),
    (3, datetime(2026, 3, 15, 8), "DE", "social", None, None, None, False),
    (4, datetime(2026, 3, 31, 18), "FR", "organic", None, None, None, False),
    (5, datetime(2026, 2, 1, 9), "DE", "organic", None, None, datetime(2026, 2, 2), False),
    (6, datetime(2025, 6, 1), "DE", "organic", None, None, datetime(2025, 6, 2), False),
    (7, datetime(2025, 7, 1), "GB", "social", None, None, datetime(2025, 7, 2), False),
    (8, datetime(2025, 8, 1), "DE", "organic", None, None, datetime(2025, 8, 2), False),
    (9, datetime(2026, 3, 5), "DE", "organic", None, None, datetime(2026, 3, 5, 1), True),
    (10, datetime(2025, 5, 1), "GB", "paid_search", None, None, None, False),
    (11, datetime(2025, 5, 2), "FR", "paid_search", None, None, None, False),
    (12, datetime(2025, 9, 1), "GB", "referral", None, None, None, False),
]
ACCOUNTS = [  # id, trader, platform, is_demo, opened_at
    (101, 1, "MT5", False, datetime(2026, 3, 2, 11)), (100, 1, "cTrader", True, datetime(2026, 3, 1)),
    (102, 2, "MT4", False, datetime(2026, 3, 10, 13)), (103, 3, "MT4", False, datetime(2026, 3, 15, 9)),
    (104, 4, "cTrader", False, datetime(2026, 3, 31, 19)), (105, 5, "MT5", False, datetime(2026, 2, 1, 10)),
    (106, 6, "MT5", False, datetime(2025, 6, 1)), (107, 7, "MT4", False, datetime(2025, 7, 1)),
    (108, 8, "MT5", False, datetime(2025, 8, 1)),
]
TXNS = [  # trader, kind, status, amount_usd, created_at
    (1, "deposit", "declined", 1000, datetime(2026, 3, 3)),
    (1, "deposit", "approved", 1000, datetime(2026, 3, 5, 10)),
    (1, "bonus", "approved", 200, datetime(2026, 3, 5, 10, 1)),
    (1, "deposit", "approved", 500, datetime(2026, 3, 20)),
    (1, "withdrawal", "approved", 300, datetime(2026, 3, 25)),
    (1, "withdrawal", "declined", 100, datetime(2026, 3, 26)),
    (1, "bonus_cancel", "approved", 50, datetime(2026, 3, 28)),
    (2, "deposit", "approved", 2000, datetime(2026, 3, 25, 12)),
    (2, "deposit", "reversed", 700, datetime(2026, 3, 26)),
    (2, "adjustment", "approved", 1000, datetime(2026, 3, 27)),
    (2, "ib_commission", "approved", 250, datetime(2026, 3, 28)),
    (2, "fee", "approved", 20, datetime(2026, 3, 29)),
    (4, "deposit", "approved", 800, datetime(2026, 4, 2)),
    (5, "deposit", "approved", 400, datetime(2026, 2, 20, 9)),
    (5, "deposit", "approved", 100, datetime(2026, 4, 10)),
    (6, "deposit", "approved", 1000, datetime(2025, 6, 5)),
    (6, "withdrawal", "approved", 150, datetime(2026, 2, 12)),
    (7, "deposit", "approved", 500, datetime(2025, 7, 5)),
    (8, "deposit", "approved", 700, datetime(2025, 8, 5)),
    (8, "deposit", "approved", 300, datetime(2026, 3, 10)),
    (9, "deposit", "approved", 5000, datetime(2026, 3, 6)),
    (12, "deposit", "declined", 200, datetime(2026, 3, 15)),
]
TRADES = [  # trader, asset_class, lots, notional, opened, closed, profit, commission, swap
    (1, "fx", 1.0, 100_000, datetime(2026, 3, 6, 9), datetime(2026, 3, 6, 17), 50, -7, 0),
    (1, "crypto", 0.5, 20_000, datetime(2026, 3, 10, 9), datetime(2026, 3, 12, 9), -300, 0, -2.5),
    (2, "indices", 2.0, 50_000, datetime(2026, 3, 26, 9), datetime(2026, 3, 27, 9), 120, 0, -1),
    (5, "fx", 0.1, 10_000, datetime(2026, 2, 21, 9), datetime(2026, 2, 21, 10), -20, 0, 0),
    (6, "fx", 1.0, 100_000, datetime(2025, 3, 15, 9), datetime(2025, 3, 15, 10), -1000, 0, 0),
    (6, "fx", 0.1, 10_000, datetime(2026, 1, 10, 9), datetime(2026, 1, 10, 10), 10, 0, 0),
    (6, "fx", 0.1, 10_000, datetime(2026, 2, 10, 9), datetime(2026, 2, 10, 10), 10, 0, 0),
    (6, "fx", 0.2, 20_000, datetime(2026, 3, 20, 9), datetime(2026, 3, 20, 10), 10, 0, 0),
    (6, "fx", 0.1, 10_000, datetime(2026, 4, 30, 12), datetime(2026, 4, 30, 13), 1, 0, 0),
    (7, "stocks", 1.0, 5_000, datetime(2026, 1, 5, 9), datetime(2026, 1, 5, 10), -5, 0, 0),
    (7, "stocks", 1.0, 5_000, datetime(2026, 2, 15, 9), datetime(2026, 2, 15, 10), -5, 0, 0),
    (8, "fx", 0.1, 10_000, datetime(2026, 1, 20, 9), datetime(2026, 1, 20, 10), 0, 0, 0),
    (8, "fx", 0.1, 10_000, datetime(2026, 2, 25, 9), datetime(2026, 2, 25, 10), 0, 0, 0),
    (10, "fx", 0.1, 10_000, datetime(2026, 1, 15, 9), datetime(2026, 1, 15, 10), -100, 0, 0),
    (11, "fx", 0.1, 10_000, datetime(2026, 1, 2, 9), datetime(2026, 1, 2, 10), 100, 0, 0),
    (12, "commodities", 0.3, 15_000, datetime(2026, 2, 27, 9), datetime(2026, 3, 1, 9), 5, 0, 0),
]
LOGINS = [(7, datetime(2026, 3, 15, 8)), (11, datetime(2026, 2, 10, 8)), (1, datetime(2026, 3, 28, 8))]

# Every KPI by hand: (current, previous).
EXPECTED: dict[str, tuple[float | None, float | None]] = {
    "registrations": (4, 1),            # T1-T4 | T5 (the test account T9 is left out)
    "kyc_approvals": (2, 1),            # T1, T2 | T5
    "ftds": (2, 1),                     # T1, T2 | T5 (T8's March deposit is not a first one)
    "ftd_conversion_7d": (2 / 4, 0.0),  # T1 (3 d), T4 (1.3 d) of T1-T4 | T5 took 19 days
    "ftd_conversion_30d": (2 / 3, 1.0),  # T1, T2 of T1-T3 (T4 too young) | T5
    "time_to_ftd": ((72 + 360) / 2, 456),  # median of 72 h and 360 h | 19 days
    "deposits": (3800, 400),            # 1000 + 500 + 2000 + 300 (T8) | 400
    "withdrawals": (300, 150),
    "net_deposits": (3500, 250),        # bonus, adjustment, IB commission, fee excluded
    "depositors": (3, 1),               # T1, T2, T8 | T5
    "avg_deposit": (3800 / 3, 400),
    "redeposit_rate": (1 / 2, 0.0),     # T1 yes, T2 only a reversed one | T5 after 49 days
    "active_traders": (4, 5),           # T1, T2, T6, T12 | T5, T6, T7, T8, T12 (opened, closed or held)
    # Trader-days: T1: 6, 10, 11 (held), 12 Mar; T2: 26, 27; T6: 20; T12: 1 Mar | one day each, and T12's
    # commodities position, opened on 27 Feb, was held on the 28th
    "dau": (8 / 31, 6 / 31),
    "wau": (1, 2),                      # 25-31 Mar: T2 | 22-28 Feb: T8, T12
    "mau": (3, 5),                      # 2-31 Mar: T1, T2, T6 (T12 closed on 1 Mar) | 30 Jan-28 Feb
    "trades": (5, 4),
    # Default churn activity (trading or an approved deposit): T5, T7, T12 of T5-T8, T12 (T7's login on
    # 15 Mar does not keep them) | T10, T11 of T6-T8, T10, T11 (T11's login on 10 Feb does not either)
    "churn_rate": (3 / 5, 2 / 5),
    "volume_usd": (205_000, 35_000),
    "client_pnl": (-125.5, -15),        # 43 - 302.5 + 119 + 10 + 5 | -20 + 10 - 5 + 0
    "broker_revenue": (7 + 3.5 - 150, None),  # commission 7 + swap 3.5 - (bonus 200 - cancel 50) | no costs
    "esma_loss_share": (4 / 9, 4 / 6),  # T1, T5, T7, T10 of 9 | T5, T6 (incl. Mar 2025), T7, T10 of 6
    "ftds_charged_back": (0, 0),        # T2's reversed $700 came after the FTD
    "ftds_charged_back_usd": (0, 0),
}


def build_broker(engine) -> None:
    with engine.begin() as conn:
        conn.execute(traders.insert(), [
            {"trader_id": t, "external_id": f"T{t}", "registered_at": reg, "country": country,
             "acquisition_channel": channel, "affiliate_id": affiliate, "vip_tier": vip, "kyc_approved_at": kyc,
             "is_test": test}
            for t, reg, country, channel, affiliate, vip, kyc, test in TRADERS])
        conn.execute(accounts.insert(), [
            {"account_id": a, "external_id": f"A{a}", "trader_id": t, "platform": platform, "login": str(a),
             "currency": "USD", "is_demo": demo, "opened_at": opened}
            for a, t, platform, demo, opened in ACCOUNTS])
        conn.execute(transactions.insert(), [
            {"txn_id": i, "external_id": f"X{i}", "trader_id": t, "kind": kind, "status": status, "amount": amount,
             "currency": "USD", "amount_usd": amount, "created_at": at}
            for i, (t, kind, status, amount, at) in enumerate(TXNS, start=1)])
        conn.execute(trades.insert(), [
            {"trade_id": i, "external_id": f"D{i}", "trader_id": t, "symbol": "X", "asset_class": asset, "side": "buy",
             "lots": lots, "notional_usd": notional, "opened_at": opened, "closed_at": closed, "open_price": 1.0,
             "close_price": 1.0, "profit_usd": profit, "commission_usd": commission, "swap_usd": swap}
            for i, (t, asset, lots, notional, opened, closed, profit, commission, swap) in enumerate(TRADES, start=1)])
        conn.execute(sessions.insert(), [
            {"session_id": i, "external_id": f"S{i}", "trader_id": t, "started_at": at, "duration_s": 60,
             "surface": "web"}
            for i, (t, at) in enumerate(LOGINS, start=1)])
        refresh_rollups(conn)  # what seeding and imports do after writing


@pytest.fixture
def broker(engine):
    build_broker(engine)
    return engine


def as_dict(kpis: list[Kpi]) -> dict[str, tuple[float | None, float | None]]:
    return {k.key: (k.value, k.previous) for k in kpis}


def assert_close(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, (value, previous) in expected.items():
        got_value, got_previous = actual[key]
        assert (got_value is None) == (value is None) and (got_previous is None) == (previous is None), key
        if value is not None:
            assert got_value == pytest.approx(value, abs=1e-9), key
        if previous is not None:
            assert got_previous == pytest.approx(previous, abs=1e-9), key


def test_every_kpi_matches_the_hand_computed_value(broker):
    kpis = compute_kpis(broker, date_range=MARCH)

    assert_close(as_dict(kpis), EXPECTED)
    assert [k.key for k in kpis] == list(SPECS)  # display order
    # Every KPI is a tile of one group or a line under a tile (the FTDs charged back).
    assert [k for g in GROUPS.values() for k in g] + [k for n in NOTES.values() for k in n] == list(SPECS)


def test_kpis_carry_units_definitions_and_direction(broker):
    kpis = {k.key: k for k in compute_kpis(broker, date_range=MARCH)}

    assert kpis["deposits"].unit == "usd" and kpis["ftd_conversion_7d"].unit == "pct"
    assert kpis["time_to_ftd"].unit == "hours" and kpis["volume_usd"].unit == "usd"
    assert "cohort" in kpis["ftd_conversion_30d"].definition.lower()
    assert "at least 30 days before the end of the data" in kpis["ftd_conversion_30d"].definition
    assert "excludes spread" in kpis["broker_revenue"].definition.lower()
    assert not kpis["churn_rate"].higher_is_better and not kpis["withdrawals"].higher_is_better
    assert kpis["net_deposits"].higher_is_better
    assert kpis["deposits"].change == pytest.approx((3800 - 400) / 400)
    assert kpis["redeposit_rate"].change is None  # previous is 0
    assert kpis["client_pnl"].change == pytest.approx((-125.5 + 15) / 15)


def test_broker_revenue_is_left_out_without_commission_or_swap(broker):
    # February alone: its trades carry neither commission nor swap, and neither does January.
    kpis = compute_kpis(broker, date_range=DateRange(date(2026, 2, 1), date(2026, 2, 28)))

    assert "broker_revenue" not in {k.key for k in kpis}


@pytest.mark.parametrize("flt, expected", [
    # Germany: T1, T3, T5, T6, T8.
    (TraderFilter(countries=("DE",)), {"registrations": (2, 1), "deposits": (1800, 400), "active_traders": (2, 3),
                                       "churn_rate": (1 / 3, 0.0), "net_deposits": (1500, 250)}),
    # MT4 accounts: T2, T3, T7.
    (TraderFilter(platforms=("MT4",)), {"registrations": (2, 0), "deposits": (2000, 0), "active_traders": (1, 1),
                                        "ftds": (1, 0)}),
    (TraderFilter(vip_tiers=("gold",)), {"registrations": (1, 0), "ftds": (1, 0), "time_to_ftd": (360, None)}),
    (TraderFilter(vip_tiers=("standard",)), {"registrations": (3, 1), "ftds": (1, 1)}),
    (TraderFilter(include_test=True), {"registrations": (5, 1), "deposits": (8800, 400), "depositors": (4, 1)}),
])
def test_the_trader_filter_narrows_every_kpi(broker, flt, expected):
    got = as_dict(compute_kpis(broker, date_range=MARCH, trader_filter=flt))

    for key, (value, previous) in expected.items():
        assert got[key][0] == pytest.approx(value), key
        assert (got[key][1] is None and previous is None) or got[key][1] == pytest.approx(previous), key


def test_an_empty_database_gives_zeros_and_blanks(engine):
    kpis = as_dict(compute_kpis(engine, date_range=MARCH))

    assert kpis["registrations"] == (0, None) and kpis["deposits"] == (0, None)
    assert kpis["ftd_conversion_7d"] == (None, None) and kpis["churn_rate"] == (None, None)
    assert "broker_revenue" not in kpis


def test_no_comparison_with_a_previous_period_before_the_data_begins(broker):
    # The data begins with T6's trade of 15 Mar 2025. The year before 1 Apr 2025 - 31 Mar 2026
    # ends after that, so it is compared with; the year before 2024/25 is not.
    covered = as_dict(compute_kpis(broker, date_range=DateRange(date(2025, 4, 1), MARCH.end)))
    assert covered["volume_usd"][1] == 100_000 and covered["registrations"][1] == 0
    before = as_dict(compute_kpis(broker, date_range=DateRange(date(2024, 3, 1), date(2025, 2, 28))))
    assert all(previous is None for _, previous in before.values())


def test_trends_fill_every_period_and_clip_to_the_range(broker):
    weekly = compute_kpi_trend(broker, metric="deposits", date_range=MARCH, period="week")
    assert list(weekly.columns) == ["period_start", "value", "partial"]
    # Weeks start on Monday: 23 Feb (only 1 Mar inside), 2, 9, 16, 23, 30 Mar.
    assert weekly["period_start"].dt.date.tolist() == [date(2026, 2, 23), date(2026, 3, 2), date(2026, 3, 9),
                                                       date(2026, 3, 16), date(2026, 3, 23), date(2026, 3, 30)]
    assert weekly["value"].tolist() == [0, 1000, 300, 500, 2000, 0]
    assert weekly["partial"].tolist() == [True, False, False, False, False, True]

    net = compute_kpi_trend(broker, metric="net_deposits", date_range=MARCH, period="month")
    assert net["value"].tolist() == [3500] and net["partial"].tolist() == [False]
    active = compute_kpi_trend(broker, metric="active_traders", date_range=MARCH, period="week")
    # T12 (closed 1 Mar) | T1 | T1 (crypto open 10, closed 12) | T6 | T2 | nobody
    assert active["value"].tolist() == [1, 1, 1, 1, 1, 0]
    pnl = compute_kpi_trend(broker, metric="client_pnl", date_range=MARCH, period="month")
    assert pnl["value"].tolist() == [pytest.approx(-125.5)]
    regs = compute_kpi_trend(broker, metric="registrations", date_range=DateRange(date(2026, 2, 1), MARCH.end),
                             period="month")
    assert regs["value"].tolist() == [1, 4]
    ftds = compute_kpi_trend(broker, metric="ftds", date_range=MARCH, period="day")
    assert len(ftds) == 31 and ftds["value"].sum() == 2
    assert ftds.loc[ftds["value"] > 0, "period_start"].dt.day.tolist() == [5, 25]


def test_an_unknown_trend_metric_is_refused(broker):
    with pytest.raises(ValueError, match="unknown trend metric"):
        compute_kpi_trend(broker, metric="happiness", date_range=MARCH, period="day")


def test_comparison_range_moves_back_by_whole_periods():
    assert comparison_range(MARCH, "day") == (MARCH.previous(), 31)
    weeks, n = comparison_range(MARCH, "week")
    assert n == 6 and weeks == DateRange(date(2026, 1, 18), date(2026, 2, 17))
    months, n = comparison_range(DateRange(date(2026, 3, 31), date(2026, 5, 15)), "month")
    assert n == 3 and months == DateRange(date(2025, 12, 31), date(2026, 2, 15))


def test_breakdown_by_country(broker):
    frame = compute_breakdown(broker, dimension="country", date_range=MARCH)

    rows = frame.set_index("value")
    assert list(frame["value"]) == ["GB", "DE", "FR"]  # by deposits: 2000, 1800, 0
    assert rows.loc["DE", ["registrations", "ftds", "deposits", "withdrawals", "net_deposits", "active_traders",
                           "volume_usd"]].tolist() == [2, 1, 1800, 300, 1500, 2, 140_000]
    assert rows.loc["DE", "ftd_conversion"] == pytest.approx(1 / 2)  # T1 within 7 days, T3 never
    assert rows.loc["GB", ["registrations", "ftds", "active_traders", "volume_usd"]].tolist() == [1, 1, 2, 65_000]
    assert rows.loc["GB", "ftd_conversion"] == 0  # T2 took 15 days
    assert rows.loc["FR", "ftd_conversion"] == 1  # T4 within 2 days (FTD in April)


def test_breakdown_keeps_the_top_values_and_sums_the_rest_as_other(broker):
    frame = compute_breakdown(broker, dimension="country", date_range=MARCH, top=1, rank_by="registrations")

    assert list(frame["value"]) == ["DE", "Other"]
    other = frame.set_index("value").loc["Other"]
    assert other["registrations"] == 2 and other["deposits"] == 2000
    assert other["ftd_conversion"] == pytest.approx(1 / 2)  # T2 no, T4 yes: recomputed, not averaged


def test_breakdown_by_platform_uses_the_first_live_account(broker):
    frame = compute_breakdown(broker, dimension="platform", date_range=MARCH).set_index("value")

    # T1's older cTrader account is a demo: T1 counts under MT5. T12 has no account.
    assert frame.loc["MT5", "registrations"] == 1 and frame.loc["MT5", "deposits"] == 1800
    assert frame.loc["cTrader", "registrations"] == 1  # T4
    assert frame.loc["No account", "active_traders"] == 1 and frame.loc["No account", "volume_usd"] == 15_000


def test_breakdown_by_vip_tier_and_affiliate_name_missing_values(broker):
    vip = compute_breakdown(broker, dimension="vip_tier", date_range=MARCH).set_index("value")
    assert vip.loc["gold", "deposits"] == 2000 and vip.loc["standard", "registrations"] == 3
    ib = compute_breakdown(broker, dimension="affiliate_id", date_range=MARCH).set_index("value")
    assert set(ib.index) == {"IB1", "No affiliate"}


def test_volume_by_asset_class(broker):
    frame = compute_volume_by_asset_class(broker, date_range=MARCH)

    expected = pd.DataFrame({
        "asset_class": ["fx", "indices", "crypto", "commodities"],
        "trades": [2, 1, 1, 1],
        "lots": [1.2, 2.0, 0.5, 0.3],
        "notional_usd": [120_000.0, 50_000.0, 20_000.0, 15_000.0],
        "client_pnl": [53.0, 119.0, -302.5, 5.0],
    })
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)


def test_breakdown_orders_ties_by_registrations_and_drops_empty_groups(broker):
    frame = compute_breakdown(broker, dimension="acquisition_channel", date_range=MARCH)

    # affiliate $2,000, organic $1,800, then no deposits: social (1 registration) before referral
    # (T12's trade only); paid_search did nothing in March and is left out.
    assert frame["value"].tolist() == ["affiliate", "organic", "social", "referral"]
    assert frame.dtypes["registrations"] == "float64"
