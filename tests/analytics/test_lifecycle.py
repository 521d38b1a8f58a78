"""Lifecycle (new / returning / resurrecting / dormant) on DuckDB and PostgreSQL.

The cases follow docs/semantics.md ("Lifecycle") rule by rule. Trades make the
default "trade" event; portal events give any other name. 2026-01-12 is a Monday.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import count

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.filters import EVERYONE, TraderFilter
from analytics.lifecycle import LIFECYCLE_COLUMNS, compute_lifecycle
from analytics.periods import ReportTooLarge, step_period, truncate_date
from connectors import database, schema
from connectors.rollups import refresh_rollups
from connectors.simulator import SimulationConfig, seed_database

_ids = count(1)


def d(text: str) -> date:
    """'01-12' -> 2026-01-12; 'YYYY-MM-DD' as is."""
    return date.fromisoformat(text if len(text) > 5 else f"2026-{text}")


def t(text: str, hour: int = 12) -> datetime:
    return datetime.combine(d(text), datetime.min.time()) + timedelta(hours=hour)


@dataclass
class Broker:
    """Hand-built rows, one call per fact."""

    traders: list[dict] = field(default_factory=list)
    trades: list[dict] = field(default_factory=list)
    portal: list[dict] = field(default_factory=list)

    def trader(self, tid: int, *, registered: str | None = "01-01", lead: str | None = None,
               country: str = "DE", is_test: bool = False) -> Broker:
        self.traders.append({"trader_id": tid, "external_id": f"T{tid}", "country": country, "is_test": is_test,
                             "registered_at": t(registered, 9) if registered else None,
                             "lead_at": t(lead, 8) if lead else None})
        return self

    def trade(self, tid: int, *days: str) -> Broker:
        for day in days:
            n = next(_ids)
            opened = t(day)
            self.trades.append({"trade_id": n, "external_id": f"D{n}", "trader_id": tid, "symbol": "EURUSD",
                                "side": "buy", "lots": 1, "opened_at": opened, "closed_at": opened + timedelta(hours=1),
                                "open_price": 1.1, "close_price": 1.1, "profit_usd": 0})
        return self

    def event(self, tid: int, name: str, *days: str) -> Broker:
        for day in days:
            n = next(_ids)
            self.portal.append({"portal_event_id": n, "external_id": f"P{n}", "trader_id": tid, "event": name,
                                "occurred_at": t(day)})
        return self

    def write(self, engine) -> None:
        with engine.begin() as conn:
            for table, rows in ((schema.traders, self.traders), (schema.trades, self.trades),
                                (schema.portal_events, self.portal)):
                if rows:
                    database.bulk_insert(conn, table, pd.DataFrame(rows))
            refresh_rollups(conn)  # what seeding and imports do after writing


def table(frame: pd.DataFrame) -> dict[str, tuple[int, int, int, int]]:
    """{'MM-DD': (new, returning, resurrecting, dormant)} for compact expectations."""
    return {f"{r.period_start:%m-%d}": (r.new, r.returning, r.resurrecting, r.dormant)
            for r in frame.itertuples(index=False)}


def daily(engine, **kw) -> pd.DataFrame:
    return compute_lifecycle(engine, **{"period": "day", "date_from": d("01-12"), "date_to": d("01-19"), **kw})


def seven_traders() -> Broker:
    b = Broker()
    b.trader(1, registered="01-09").trade(1, "01-12", "01-13", "01-15", "01-16", "01-17")
    b.trader(2).trade(2, "01-09", "01-12")          # older history: resurrecting on 01-12
    b.trader(3).trade(3, "01-11", "01-12")          # look-back day active: returning on 01-12
    b.trader(4, registered="01-19").trade(4, "01-19")  # new on the last day; its dormant day is trimmed
    b.trader(5).trade(5, "01-10")                   # active before the look-back only: invisible
    b.trader(6).trade(6, "01-11")                   # active on the look-back day: dormant on 01-12
    b.trader(7, registered="01-14").trade(7, "01-14", "01-18")
    return b


def test_each_period_is_labelled_by_the_spec_rules(engine):
    seven_traders().write(engine)

    frame = daily(engine)

    assert list(frame.columns) == LIFECYCLE_COLUMNS
    assert table(frame) == {
        "01-12": (1, 1, 1, -1),  # new 1, returning 3, resurrecting 2, dormant 6
        "01-13": (0, 1, 0, -2),  # returning 1, dormant 2 and 3
        "01-14": (1, 0, 0, -1),  # new 7, dormant 1
        "01-15": (0, 0, 1, -1),  # resurrecting 1, dormant 7
        "01-16": (0, 1, 0, 0),
        "01-17": (0, 1, 0, 0),
        "01-18": (0, 0, 1, -1),  # resurrecting 7, dormant 1
        "01-19": (1, 0, 0, -1),  # new 4, dormant 7
    }
    assert frame["period_start"].tolist()[0] == d("01-12")
    assert (frame["dormant"] <= 0).all()


def test_registration_basis_makes_a_trader_registered_earlier_resurrecting(engine):
    seven_traders().write(engine)

    frame = daily(engine, new_basis="registration")

    # Trader 1 registered on 01-09 and first traded on 01-12: resurrecting, not new.
    assert table(frame)["01-12"] == (0, 1, 2, -1)
    # Registered on the day of the first trade: new in both modes.
    assert table(frame)["01-14"] == (1, 0, 0, -1) and table(frame)["01-19"] == (1, 0, 0, -1)


def test_lifecycle_created_before_first_event_never_new(engine):
    b = Broker()
    b.trader(1, registered="01-05").trade(1, "01-12", "01-13")
    b.trader(2, registered=None, lead="01-12").trade(2, "01-12")  # a lead: created when captured
    b.trader(3, registered=None, lead="01-06").trade(3, "01-13")
    b.trader(4, registered=None).trade(4, "01-13")                # neither date: never new
    b.write(engine)

    by_registration = table(daily(engine, new_basis="registration"))
    by_first_activity = table(daily(engine))

    assert by_registration["01-12"] == (1, 0, 1, 0)  # 2 new (lead that day), 1 resurrecting
    assert by_registration["01-13"] == (0, 1, 2, -1)  # 1 returning; 3 and 4 resurrecting; 2 dormant
    assert sum(v[0] for v in by_registration.values()) == 1
    assert by_first_activity["01-12"] == (2, 0, 0, 0)
    assert by_first_activity["01-13"] == (2, 1, 0, -1)


def test_look_back_period_makes_the_first_day_returning(engine):
    Broker().trader(1).trade(1, "01-11", "01-12").write(engine)

    frame = compute_lifecycle(engine, period="day", date_from=d("01-12"), date_to=d("01-12"))

    assert table(frame) == {"01-12": (0, 1, 0, 0)}


def test_dormant_counts_once_per_gap_and_is_trimmed_after_date_to(engine):
    Broker().trader(1).trade(1, "01-12", "01-16", "01-17", "01-19").write(engine)

    frame = daily(engine)

    assert frame["dormant"].tolist() == [0, -1, 0, 0, 0, 0, -1, 0]  # 01-13 and 01-18, not 01-14/15/20
    assert frame["dormant"].sum() == -2


def test_weekly_range_snaps_to_monday_week_starts(engine):
    b = Broker()
    b.trader(1).trade(1, "01-12")            # Monday before date_from, same week
    b.trader(2).trade(2, "01-25")            # Sunday after date_to, same week as date_to
    b.trader(3).trade(3, "01-07", "01-13")   # look-back week active
    b.write(engine)

    frame = compute_lifecycle(engine, period="week", date_from=d("01-14"), date_to=d("01-20"))

    assert frame["period_start"].tolist() == [d("01-12"), d("01-19")]
    assert table(frame) == {"01-12": (1, 1, 0, 0), "01-19": (1, 0, 0, -2)}


def test_sunday_weeks_start_on_sunday(engine):
    Broker().trader(1).trade(1, "01-18", "01-19").write(engine)  # Sunday and Monday

    monday = compute_lifecycle(engine, period="week", date_from=d("01-11"), date_to=d("01-24"))
    sunday = compute_lifecycle(engine, period="week", date_from=d("01-11"), date_to=d("01-24"), week_start="sunday")

    assert table(monday) == {"01-05": (0, 0, 0, 0), "01-12": (1, 0, 0, 0), "01-19": (0, 1, 0, 0)}
    assert table(sunday) == {"01-11": (0, 0, 0, 0), "01-18": (1, 0, 0, 0)}


def test_monthly_periods_cover_whole_months(engine):
    b = Broker()
    b.trader(1).trade(1, "2026-09-19")                 # after date_to, inside its month
    b.trader(2).trade(2, "2026-07-20", "2026-08-03")   # look-back month active
    b.write(engine)

    frame = compute_lifecycle(engine, period="month", date_from=d("2026-08-15"), date_to=d("2026-09-01"))

    assert frame["period_start"].tolist() == [d("2026-08-01"), d("2026-09-01")]
    assert table(frame) == {"08-01": (0, 1, 0, 0), "09-01": (1, 0, 0, -1)}


def test_periods_without_activity_are_zero_filled(engine):
    Broker().trader(1).trade(1, "01-12").write(engine)

    frame = compute_lifecycle(engine, period="week", date_from=d("01-12"), date_to=d("02-15"))

    assert frame["period_start"].tolist() == [d("01-12") + timedelta(weeks=i) for i in range(5)]
    assert table(frame) == {"01-12": (1, 0, 0, 0), "01-19": (0, 0, 0, -1), "01-26": (0, 0, 0, 0),
                            "02-02": (0, 0, 0, 0), "02-09": (0, 0, 0, 0)}
    assert all(str(frame[c].dtype) == "int64" for c in LIFECYCLE_COLUMNS[1:])


def test_long_daily_ranges_keep_neighbours_across_every_62_periods(engine):
    # Day 0 is the look-back day 01-11; periods are tracked 62 to a 64-bit word, so 03-13/03-14
    # and 05-14/05-15 sit on either side of a word boundary.
    Broker().trader(1).trade(1, "03-13", "03-14", "03-15", "05-14", "05-15").write(engine)

    frame = compute_lifecycle(engine, period="day", date_from=d("01-12"), date_to=d("05-21"))

    assert len(frame) == 130
    assert {k: v for k, v in table(frame).items() if any(v)} == {
        "03-13": (1, 0, 0, 0), "03-14": (0, 1, 0, 0), "03-15": (0, 1, 0, 0), "03-16": (0, 0, 0, -1),
        "05-14": (0, 0, 1, 0), "05-15": (0, 1, 0, 0), "05-16": (0, 0, 0, -1)}


def test_an_empty_database_gives_zero_rows_for_every_period(engine):
    frame = compute_lifecycle(engine, period="day", date_from=d("01-12"), date_to=d("01-14"))

    assert table(frame) == {"01-12": (0, 0, 0, 0), "01-13": (0, 0, 0, 0), "01-14": (0, 0, 0, 0)}


def test_more_periods_than_the_shared_limit_are_refused(engine):
    Broker().trader(1).trade(1, "01-12").write(engine)

    with pytest.raises(ReportTooLarge, match=r"^3,661 daily periods is more than the limit of 3,660"):
        compute_lifecycle(engine, period="day", date_from=d("2016-01-12"), date_to=d("2026-01-19"))
    assert len(compute_lifecycle(engine, period="day", date_from=d("2016-01-12"), date_to=d("2026-01-18"))) == 3_660


def test_any_event_name_of_the_stream_can_be_the_activity(engine):
    b = Broker().trader(1).trader(2).trader(3, registered="01-13")
    b.event(1, "education_view", "01-12", "01-13").event(2, "education_view", "01-13").trade(2, "01-12")
    b.write(engine)

    assert table(daily(engine, event="education_view"))["01-13"] == (1, 1, 0, 0)
    registrations = table(daily(engine, event="registered"))
    assert registrations["01-13"] == (1, 0, 0, 0) and registrations["01-14"] == (0, 0, 0, -1)


def test_the_trader_filter_applies_and_test_accounts_are_left_out_by_default(engine):
    b = Broker()
    b.trader(1, country="DE").trade(1, "01-12")
    b.trader(2, country="GB").trade(2, "01-12")
    b.trader(3, country="GB", is_test=True).trade(3, "01-12")
    b.write(engine)

    def new_on_12(flt: TraderFilter) -> int:
        return table(daily(engine, trader_filter=flt))["01-12"][0]

    assert new_on_12(TraderFilter()) == 2
    assert new_on_12(EVERYONE) == 3
    assert new_on_12(TraderFilter(countries=("GB",))) == 1
    assert new_on_12(TraderFilter(countries=("GB",), include_test=True)) == 2


def test_nonsense_arguments_are_refused(engine):
    with pytest.raises(ValueError, match="before"):
        compute_lifecycle(engine, date_from=d("01-12"), date_to=d("01-11"))
    with pytest.raises(ValueError, match="new_basis"):
        compute_lifecycle(engine, date_from=d("01-12"), date_to=d("01-19"), new_basis="signup")
    with pytest.raises(ValueError, match="period"):
        compute_lifecycle(engine, date_from=d("01-12"), date_to=d("01-19"), period="year")


# -- A simulated broker against a plain pandas reading of the spec -------------------------------


def lifecycle_in_pandas(events: pd.DataFrame, created_at: pd.Series, *, period: str, date_from: date,
                        date_to: date, week_start: str) -> dict[date, list[int]]:
    """The lifecycle rules trader by trader, as PostHog's arrays do it: sorted active periods, previous and
    following period, then counts. ``created_at`` maps trader_id to the created timestamp."""
    first, last = truncate_date(date_from, period, week_start), truncate_date(date_to, period, week_start)
    look_back, end = step_period(first, period, -1, week_start), step_period(last, period, 1, week_start)
    out: dict[date, list[int]] = {}
    p = first
    while p <= last:
        out[p] = [0, 0, 0, 0]
        p = step_period(p, period, 1, week_start)
    days = events["occurred_at"].dt.date
    window = events[(days >= look_back) & (days < end)]
    for trader_id, times in window.groupby("trader_id")["occurred_at"]:
        active = sorted({truncate_date(ts.date(), period, week_start) for ts in times})
        created = created_at.get(trader_id)
        created_p = None if pd.isna(created) else truncate_date(created.date(), period, week_start)
        for i, current in enumerate(active):
            previous = created_p if i == 0 else active[i - 1]
            if previous == current:
                status = 0
            elif i > 0 and step_period(current, period, -1, week_start) == previous:
                status = 1
            else:
                status = 2
            if current in out:
                out[current][status] += 1
            following = active[i + 1] if i + 1 < len(active) else None
            gone = step_period(current, period, 1, week_start)
            if following != gone and gone in out:
                out[gone][3] -= 1
    return out


CASES = [  # event, period, new_basis, week_start
    ("trade", "week", "first-activity", "monday"),
    ("trade", "month", "registration", "monday"),
    ("login", "day", "first-activity", "monday"),
    ("deposit", "week", "registration", "sunday"),
]


def test_a_simulated_broker_matches_a_plain_pandas_reading_of_the_spec(engine):
    # One seed per backend for every case: seeding is most of this test's time.
    seed_database(engine, SimulationConfig(traders=300, days=150, seed=11, end=date(2026, 11, 1)))
    te, tr = schema.trader_events, schema.traders
    with engine.connect() as conn:
        events = pd.DataFrame(conn.execute(
            sa.select(te.c.trader_id, te.c.event, te.c.occurred_at).join(tr, tr.c.trader_id == te.c.trader_id)
            .where(tr.c.is_test.is_(False))).all(), columns=["trader_id", "event", "occurred_at"])
        people = pd.DataFrame(conn.execute(sa.select(tr.c.trader_id, tr.c.registered_at, tr.c.lead_at)).all(),
                              columns=["trader_id", "registered_at", "lead_at"]).set_index("trader_id")
        positions = pd.DataFrame(conn.execute(
            sa.select(schema.trades.c.trader_id, schema.trades.c.opened_at, schema.trades.c.closed_at)
            .join(tr, tr.c.trader_id == schema.trades.c.trader_id).where(tr.c.is_test.is_(False))).all(),
            columns=["trader_id", "opened_at", "closed_at"])
    # Trading activity is every day a position was opened, closed or held (open at some moment of it):
    # each position's days from its opening day to its closing day.
    held = [(trader_id, day) for trader_id, opened, closed in positions.itertuples(index=False)
            for day in pd.date_range(opened.floor("D"), closed.floor("D"), freq="D")]
    trading = pd.DataFrame(held, columns=["trader_id", "occurred_at"]).assign(event="trade")
    assert len(trading) > len(positions)  # some positions were held over a day
    events = pd.concat([events[events["event"] != "trade"], trading], ignore_index=True)
    date_from, date_to = date(2026, 7, 9), date(2026, 10, 20)

    for event, period, new_basis, week_start in CASES:
        rows = events[events["event"] == event]
        if new_basis == "registration":
            created = people["registered_at"].fillna(people["lead_at"])
        else:
            created = rows.groupby("trader_id")["occurred_at"].min()
        got = compute_lifecycle(engine, event=event, period=period, date_from=date_from, date_to=date_to,
                                new_basis=new_basis, week_start=week_start)
        expected = lifecycle_in_pandas(rows, created, period=period, date_from=date_from, date_to=date_to,
                                       week_start=week_start)

        case = (event, period, new_basis, week_start)
        assert {r.period_start: [r.new, r.returning, r.resurrecting, r.dormant]
                for r in got.itertuples(index=False)} == expected, case
        assert got[["new", "returning", "resurrecting"]].to_numpy().sum() > 20, case  # not vacuous
