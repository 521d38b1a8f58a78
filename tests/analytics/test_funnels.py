"""Funnels (ordered, strict, exclusions, times, breakdowns, range and filters) from the rules of
docs/semantics.md ("Funnels"), on DuckDB and PostgreSQL.

Journeys are hand-built portal events (any event name) unless a case needs a core event.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import funnels
from analytics.filters import TraderFilter
from analytics.funnels import (
    Exclusion,
    FunnelRejected,
    FunnelSpec,
    StepFilter,
    compute_funnel,
    sources,
    stream,
    validate_spec,
    window_seconds,
)
from analytics.periods import DateRange
from connectors import columnar, database
from connectors.errors import TraderLensError
from connectors.schema import portal_events, sessions, traders, trades

T0 = datetime(2026, 3, 2, 12, 0, 0)  # a Monday
HOUR = 3600
DAY = 86_400


def at(seconds: float = 0) -> datetime:
    return T0 + timedelta(seconds=seconds)


def load(engine: sa.Engine, journeys: dict[int, list[tuple]], *, people: dict[int, dict] | None = None) -> None:
    """Insert traders and their portal events.

    ``journeys``: trader id -> [(event, when[, properties])], ``when`` a datetime or seconds after T0.
    ``people``: trader id -> trader columns overriding the defaults (country DE, channel organic).
    """
    people = people or {}
    ids = sorted(set(journeys) | set(people))
    trader_rows = [{"trader_id": i, "external_id": f"EXT-{i}", "country": "DE", "acquisition_channel": "organic",
                    "is_test": False, **people.get(i, {})} for i in ids]
    events = []
    for trader_id, steps in journeys.items():
        for name, when, *props in steps:
            events.append({
                "portal_event_id": len(events) + 1, "external_id": f"PE-{len(events) + 1}", "trader_id": trader_id,
                "event": name, "occurred_at": when if isinstance(when, datetime) else at(when),
                "properties": json.dumps(props[0]) if props and props[0] is not None else None,
            })
    with engine.begin() as conn:
        database.bulk_insert(conn, traders, pd.DataFrame(trader_rows))
        if events:
            database.bulk_insert(conn, portal_events, pd.DataFrame(events))


def add_logins(engine: sa.Engine, logins: list[tuple[int, datetime]]) -> None:
    rows = [{"session_id": i + 1, "external_id": f"S-{i + 1}", "trader_id": t, "started_at": when, "duration_s": 60,
             "surface": "web"} for i, (t, when) in enumerate(logins)]
    with engine.begin() as conn:
        database.bulk_insert(conn, sessions, pd.DataFrame(rows))


def add_trades(engine: sa.Engine, opened: list[tuple[int, datetime]]) -> None:
    rows = [{"trade_id": i + 1, "external_id": f"T-{i + 1}", "trader_id": t, "symbol": "EURUSD", "side": "buy",
             "lots": 1.0, "opened_at": when, "closed_at": when + timedelta(minutes=1), "open_price": 1.1,
             "close_price": 1.1, "profit_usd": 0.0} for i, (t, when) in enumerate(opened)]
    with engine.begin() as conn:
        database.bulk_insert(conn, trades, pd.DataFrame(rows))


def run(engine: sa.Engine, *steps: str, **spec) -> pd.DataFrame:
    kwargs = {k: spec.pop(k) for k in ("date_range", "trader_filter") if k in spec}
    return compute_funnel(engine, FunnelSpec(steps=steps, **spec), **kwargs).steps


def counts(steps: pd.DataFrame) -> list[int]:
    return steps["count"].tolist()


def times(steps: pd.DataFrame, column: str = "average_time_to_convert_s") -> list[float | None]:
    return [None if pd.isna(v) else v for v in steps[column].tolist()]


def test_counts_rates_and_drop_off_per_step(engine):
    load(engine, {
        1: [("A", 0), ("B", HOUR), ("C", 2 * HOUR)],
        2: [("A", 0), ("B", HOUR)],
        3: [("A", 0)],
        4: [("B", 0), ("C", HOUR)],  # never did step 1: not in the funnel
    })

    steps = run(engine, "A", "B", "C")

    assert steps["step"].tolist() == [1, 2, 3]
    assert steps["event"].tolist() == ["A", "B", "C"]
    assert counts(steps) == [3, 2, 1]
    assert steps["conversion_rate"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert steps["conversion_from_previous"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 2])
    assert steps["drop_off"].tolist() == [0, 1, 1]
    assert times(steps) == [None, 3600.0, 3600.0]


def test_window_boundary_is_inclusive(engine):
    load(engine, {1: [("A", 0), ("B", 300)], 2: [("A", 0), ("B", 301)]})

    assert counts(run(engine, "A", "B", window_s=300)) == [2, 1]


def test_window_runs_from_step_one_not_from_the_previous_step(engine):
    load(engine, {
        1: [("A", 0), ("B", 360), ("C", 720)],  # C is 6 min after B but 12 min after A
        2: [("A", 0), ("B", 300), ("C", 600)],
    })

    assert counts(run(engine, "A", "B", "C", window_s=600)) == [2, 2, 1]


def test_a_repeated_step_one_restarts_the_attempt(engine):
    load(engine, {
        1: [("A", at(60)), ("A", at(35 * 60)), ("B", at(41 * 60))],  # 13:01, 13:35, 13:41
        2: [("A", 0), ("A", 40 * 60), ("B", 65 * 60)],  # B is 65 min after the first A, 25 after the second
    })

    assert times(run(engine, "A", "B")) == [None, (360 + 1500) / 2]
    steps = run(engine, "A", "B", window_s=30 * 60)
    assert counts(steps) == [2, 2]


def test_the_same_event_twice_needs_two_events(engine):
    load(engine, {
        1: [("A", 0)],
        2: [("A", 0), ("A", 60)],
        3: [("A", 0), ("A", 0)],  # two events at one instant are processed one after the other
    })

    steps = run(engine, "A", "A")

    assert counts(steps) == [3, 2]
    assert times(steps) == [None, 60.0]  # the 0 s conversion counts but is not timed


def test_one_event_advances_an_attempt_by_one_step_at_most(engine):
    load(engine, {1: [("A", 0), ("B", 60)], 2: [("A", 0), ("B", 60), ("B", 120)]})

    assert counts(run(engine, "A", "B", "B")) == [2, 2, 1]


def test_steps_at_the_same_instant_resolve_in_step_order(engine):
    load(engine, {
        1: [("A", 0), ("B", 0)],
        2: [("B", 0), ("A", 0)],  # inserted in reverse order
        3: [("C", 0), ("B", 0), ("A", 0)],
    })

    two = run(engine, "A", "B")
    assert counts(two) == [3, 3]
    assert times(two) == [None, None]  # converted in 0 s: counted, not timed
    assert counts(run(engine, "A", "B", "C")) == [3, 3, 1]


def test_strict_order_is_broken_by_any_other_event_of_the_trader(engine):
    load(engine, {
        1: [("A", 0), ("X", 60), ("B", 120)],
        2: [("A", 0), ("B", 120)],
        3: [("A", 0), ("X", 60), ("A", 90), ("B", 120)],  # a new step 1 starts a new chain
        4: [("A", 0), ("B", 120)],  # a login (a core event) in between
        5: [("A", 0), ("X", 120), ("B", 120)],  # an unrelated event at the same instant as B
    })
    add_logins(engine, [(4, at(60))])

    assert counts(run(engine, "A", "B", order="strict")) == [5, 3]
    assert counts(run(engine, "A", "B", order="ordered")) == [5, 5]


def untrimmed_strict(engine, monkeypatch) -> pd.DataFrame:
    """The strict A -> B funnel (1 h) with every unrelated event fetched and kept: what the trimmed
    fetch must equal."""
    with monkeypatch.context() as m:
        m.setattr(stream.EventStream, "collapse_unrelated", lambda self: None)
        m.setattr(sources, "_TRIM_UNRELATED", False)
        return run(engine, "A", "B", order="strict", window_s=HOUR)


def test_strict_order_finds_the_breaking_login_across_window_buckets(engine, monkeypatch):
    # Logins are a bulk source: strict funnels fetch only the login at a step's instant and the first
    # one after it within the window (DuckDB looks in the step's window-long bucket and the next).
    # A's at 59 min and its login at 61 min sit in different one-hour buckets.
    load(engine, {
        1: [("A", 0), ("B", 50 * 60)],
        2: [("A", 0), ("B", 50 * 60)],
        3: [("A", 59 * 60), ("B", 62 * 60)],
        4: [("A", 0), ("B", HOUR)],
        5: [("A", 0), ("B", 30 * 60)],
        6: [("A", 0), ("B", 10 * 60)],
        7: [("A", 0), ("B", 10 * 60), ("B", 20 * 60)],
    })
    add_logins(engine, [(1, at(30 * 60)), (2, at(55 * 60)), (3, at(61 * 60)), (4, at(HOUR - 1)), (5, at(2 * HOUR)),
                        (6, at(0)), (7, at(10 * 60)), (7, at(15 * 60))])
    trimmed = run(engine, "A", "B", order="strict", window_s=HOUR)
    # 1, 3 and 4 have a login between A and B. 2's comes after B and 5's after the window; 6's and
    # 7's share an instant with a step event, where the step event goes first.
    assert counts(trimmed) == [7, 4]
    pd.testing.assert_frame_equal(trimmed, untrimmed_strict(engine, monkeypatch))


def test_strict_order_finds_the_breaking_trade_across_midnight_and_at_repeated_instants(engine, monkeypatch):
    # Trades are a bulk source too: only the trade at a step's instant and the first one after it are
    # fetched (PostgreSQL probes each step instant, repeated instants included, in index order).
    night = datetime(2026, 3, 2, 23, 30)
    load(engine, {
        1: [("A", night), ("B", night + timedelta(minutes=50))],
        2: [("A", night), ("B", night + timedelta(minutes=50))],
        3: [("A", 0), ("A", 0), ("B", 20 * 60)],
        4: [("A", 0), ("A", 0), ("B", 20 * 60)],
        5: [("A", 0), ("B", 20 * 60)],
        6: [("A", 0), ("B", 20 * 60)],
        7: [("A", datetime(2026, 3, 2, 23, 59, 59, 999_999)), ("B", datetime(2026, 3, 3, 0, 30))],
    })
    add_trades(engine, [
        (1, night + timedelta(minutes=40)),  # 00:10 the next day, between A and B
        (2, night + timedelta(minutes=55)),  # after B
        (3, at(10 * 60)),
        (5, at(0)), (5, at(5 * 60)),  # one at A's instant, then one between A and B
        (6, at(0)),
        (7, datetime(2026, 3, 3)),  # a microsecond after A, on the next day
    ])

    trimmed = run(engine, "A", "B", order="strict", window_s=HOUR)

    assert counts(trimmed) == [7, 3]  # 2, 4 and 6 convert
    pd.testing.assert_frame_equal(trimmed, untrimmed_strict(engine, monkeypatch))


def test_times_keep_their_microseconds_on_either_side_of_2000(engine, monkeypatch):
    # PostgreSQL hands timestamps over in its binary form (microseconds since 2000-01-01); ties and
    # strict chains depend on every microsecond.
    def us(n: int) -> datetime:
        return datetime(2026, 3, 2, 12) + timedelta(microseconds=n)

    load(engine, {
        1: [("A", datetime(1999, 12, 31, 23, 59, 59, 500_000)), ("B", datetime(2000, 1, 1, 0, 0, 0, 250_000))],
        2: [("A", us(1)), ("B", us(3))],  # a login at us(2) breaks the strict chain
        3: [("A", us(1)), ("B", us(2))],  # its login at us(3) comes after B
        4: [("A", datetime(1999, 12, 31, 23, 59, 59, 999_999))],
    })
    add_logins(engine, [(2, us(2)), (3, us(3))])
    strict = FunnelSpec(("A", "B"), window_s=60, order="strict")

    def check() -> None:
        ordered = run(engine, "A", "B", window_s=60)
        assert counts(ordered) == [4, 3]
        assert ordered["average_time_to_convert_s"].iloc[1] == pytest.approx((0.75 + 2e-6 + 1e-6) / 3, abs=1e-9)
        assert counts(run(engine, "A", "B", order="strict", window_s=60)) == [4, 2]
        reached = funnels.compute_dropoffs(engine, strict, step=1).people.set_index("trader_id")["reached_at"]
        assert reached.to_dict() == {2: pd.Timestamp(us(1)), 4: pd.Timestamp(1999, 12, 31, 23, 59, 59, 999_999)}

    check()
    with monkeypatch.context() as m:  # PostgreSQL's fallback for a result that is not all 8-byte values
        m.setattr(columnar, "_copy_binary", lambda *args: None)
        check()


def test_strict_order_is_broken_by_the_right_event_with_the_wrong_property(engine):
    load(engine, {
        1: [("A", 0), ("B", 60, {"kind": "other"}), ("B", 120, {"kind": "card"})],
        2: [("A", 0), ("B", 120, {"kind": "card"})],
    })
    card = (None, StepFilter("kind", "card"))

    assert counts(run(engine, "A", "B", order="strict", step_filters=card)) == [2, 1]
    assert counts(run(engine, "A", "B", order="ordered", step_filters=card)) == [2, 2]


def test_a_spoiled_attempt_removes_the_trader_from_every_step(engine):
    load(engine, {
        1: [("signup", 0), ("x", 600)],  # vanishes, step 1 included
        2: [("signup", 0)],
        3: [("signup", 0), ("x", 600), ("signup", HOUR), ("pay", 2 * HOUR)],  # a later clean attempt replaces it
        4: [("signup", 0), ("x", 2 * DAY)],  # x outside the window of the attempt
        5: [("signup", 0), ("pay", HOUR), ("x", 2 * HOUR)],  # x after the range it guards
        6: [("signup", 0), ("x", 60), ("pay", 60)],  # x at a mixed-step instant is ignored
        7: [("signup", 0), ("x", 0)],
    })

    steps = run(engine, "signup", "pay", window_s=DAY, exclusions=(Exclusion("x", 0, 1),))

    assert counts(steps) == [6, 3]
    assert times(steps) == [None, (3600 + 3600 + 60) / 3]


def test_an_exclusion_guards_only_its_own_step_range(engine):
    load(engine, {
        1: [("A", 0), ("x", 60), ("B", 120), ("C", 180)],  # x before step 2: outside "between 2 and 3"
        2: [("A", 0), ("B", 120), ("x", 150), ("C", 180)],  # spoiled: removed from every step
        3: [("A", 0), ("B", 120)],
    })

    steps = run(engine, "A", "B", "C", exclusions=(Exclusion("x", 1, 2),))

    assert counts(steps) == [2, 2, 1]


def test_average_and_median_time_to_convert(engine):
    # Step 2 times [3600, 7200, 7200]: average 6000, median 7200; step 3 times [7200, 3600]: 5400 and 5400.
    load(engine, {
        1: [("A", 0), ("B", 3600), ("C", 3600 + 7200)],
        2: [("A", 0), ("B", 7200), ("C", 7200 + 3600)],
        3: [("A", 0), ("B", 7200)],
    })

    steps = run(engine, "A", "B", "C")

    assert counts(steps) == [3, 3, 2]
    assert times(steps) == [None, 6000.0, 5400.0]
    assert times(steps, "median_time_to_convert_s") == [None, 7200.0, 5400.0]


def test_zero_second_conversions_count_but_are_not_timed(engine):
    load(engine, {1: [("A", 0), ("B", 0)], 2: [("A", 0), ("B", 100)], 3: [("A", 0)]})

    steps = run(engine, "A", "B")

    assert counts(steps) == [3, 2]
    assert times(steps) == [None, 100.0]
    assert times(steps, "median_time_to_convert_s") == [None, 100.0]


def test_a_step_nobody_reached_has_no_time(engine):
    load(engine, {1: [("A", 0), ("B", 60)]})

    steps = run(engine, "A", "B", "C")

    assert counts(steps) == [1, 1, 0]
    assert times(steps) == [None, 60.0, None]
    assert steps["conversion_from_previous"].tolist() == [1.0, 1.0, 0.0]


BROWSER_JOURNEYS = {
    1: [("sign up", datetime(2020, 1, 1, 12), {"browser": "Chrome"}),
        ("play movie", datetime(2020, 1, 1, 13), {"browser": "Chrome"}),
        ("buy", datetime(2020, 1, 1, 15), {"browser": "Chrome"})],
    2: [("sign up", datetime(2020, 1, 2, 14), {"browser": "Safari"}),
        ("play movie", datetime(2020, 1, 2, 16), {"browser": "Safari"})],
    3: [("sign up", datetime(2020, 1, 2, 14), {"browser": "Safari"})],
}


def by_value(steps: pd.DataFrame) -> dict[str, list[int]]:
    return {value: block["count"].tolist() for value, block in steps.groupby("breakdown_value", sort=False)}


def test_event_property_breakdown_is_one_funnel_per_value(engine):
    load(engine, BROWSER_JOURNEYS)

    result = compute_funnel(engine, FunnelSpec(("sign up", "play movie", "buy"), window_s=7 * DAY,
                                               breakdown="browser", breakdown_kind="event"))

    assert result.breakdown_values == ("Safari", "Chrome")  # most traders first
    assert by_value(result.steps) == {"Safari": [2, 1, 0], "Chrome": [1, 1, 1]}
    chrome = result.steps[result.steps["breakdown_value"] == "Chrome"]
    safari = result.steps[result.steps["breakdown_value"] == "Safari"]
    assert times(chrome) == [None, 3600.0, 7200.0]
    assert times(safari) == [None, 7200.0, None]


def test_breakdown_keeps_the_top_values_and_groups_the_rest_as_other(engine):
    load(engine, {**BROWSER_JOURNEYS,
                  4: [("sign up", datetime(2020, 1, 2, 14), {"browser": "random"})],
                  5: [("sign up", datetime(2020, 1, 2, 15), {"browser": "another one"})]})

    result = compute_funnel(engine, FunnelSpec(("sign up", "play movie", "buy"), window_s=7 * DAY,
                                               breakdown="browser", breakdown_kind="event", breakdown_limit=1))

    assert by_value(result.steps) == {"Safari": [2, 1, 0], "Other": [3, 1, 1]}
    other = result.steps[result.steps["breakdown_value"] == "Other"]
    assert times(other) == [None, 3600.0, 7200.0]


def test_first_touch_and_last_touch_attribution(engine):
    load(engine, {
        1: [("sign up", 0, {"browser": "Chrome"}), ("play movie", 60, {"browser": "Safari"})],
        2: [("sign up", 0), ("play movie", 60, {"browser": "Safari"})],  # first value is on step 2
        3: [("sign up", 0)],  # no value at all
    })

    def values(attribution: str) -> dict[str, list[int]]:
        return by_value(compute_funnel(engine, FunnelSpec(("sign up", "play movie"), breakdown="browser",
                                                          breakdown_kind="event", attribution=attribution)).steps)

    assert values("first_touch") == {"(none)": [1, 0], "Chrome": [1, 1], "Safari": [1, 1]}
    assert values("last_touch") == {"Safari": [2, 2], "(none)": [1, 0]}


def test_property_keys_may_start_with_a_dollar(engine):
    load(engine, {1: [("A", 0, {"$browser": "Chrome"}), ("B", 60, {"$browser": "Chrome"})],
                  2: [("A", 0, {"$browser": "Safari"})]})

    result = compute_funnel(engine, FunnelSpec(("A", "B"), breakdown="$browser", breakdown_kind="event",
                                               step_filters=(None, StepFilter("$browser", "Chrome"))))

    assert by_value(result.steps) == {"Chrome": [1, 1], "Safari": [1, 0]}


def test_trader_attribute_breakdown(engine):
    load(engine, {1: [("A", 0), ("B", 60)], 2: [("A", 0)], 3: [("A", 0), ("B", 60)]},
         people={1: {"country": "DE", "vip_tier": "gold"}, 2: {"country": "DE"}, 3: {"country": "GB"}})

    by_country = compute_funnel(engine, FunnelSpec(("A", "B"), breakdown="country"))
    by_tier = compute_funnel(engine, FunnelSpec(("A", "B"), breakdown="vip_tier"))

    assert by_value(by_country.steps) == {"DE": [2, 1], "GB": [1, 1]}
    assert by_value(by_tier.steps) == {"standard": [2, 1], "gold": [1, 1]}


def test_every_step_event_must_fall_inside_the_date_range(engine):
    load(engine, {
        1: [("A", datetime(2026, 3, 2, 10)), ("B", datetime(2026, 3, 5, 10))],
        2: [("A", datetime(2026, 2, 27, 10)), ("B", datetime(2026, 3, 3, 10))],  # step 1 before the range
    })

    def in_range(start: date, end: date) -> list[int]:
        return counts(run(engine, "A", "B", date_range=DateRange(start, end)))

    assert in_range(date(2026, 3, 1), date(2026, 3, 4)) == [1, 0]  # B after date_to is not seen
    assert in_range(date(2026, 3, 1), date(2026, 3, 5)) == [1, 1]  # date_to is the whole day
    assert in_range(date(2026, 2, 1), date(2026, 3, 31)) == [2, 2]


def test_the_trader_filter_applies_and_test_accounts_are_left_out_by_default(engine):
    load(engine, {1: [("A", 0), ("B", 60)], 2: [("A", 0)], 3: [("A", 0), ("B", 60)]},
         people={2: {"country": "GB"}, 3: {"is_test": True}})

    assert counts(run(engine, "A", "B")) == [2, 1]
    assert counts(run(engine, "A", "B", trader_filter=TraderFilter(include_test=True))) == [3, 2]
    assert counts(run(engine, "A", "B", trader_filter=TraderFilter(countries=("GB",)))) == [1, 0]
    # Strict funnels filter the step events only (unrelated events of other traders change nothing).
    add_logins(engine, [(3, at(30)), (2, at(30))])
    assert counts(run(engine, "A", "B", order="strict")) == [2, 1]
    assert counts(run(engine, "A", "B", order="strict", trader_filter=TraderFilter(include_test=True))) == [3, 1]
    assert counts(run(engine, "A", "B", order="strict", trader_filter=TraderFilter(countries=("GB",)))) == [1, 0]


def test_an_empty_database_gives_zero_counts_and_no_conversion_rate(engine):
    steps = run(engine, "A", "B")

    assert counts(steps) == [0, 0]
    # Nobody entered: no share of anybody exists, at step 1 (not 100%) or after it.
    assert steps["conversion_rate"].isna().all()
    assert math.isnan(steps["conversion_from_previous"].iloc[0])
    assert times(steps) == [None, None]


def test_a_zero_or_negative_window_means_fourteen_days(engine):
    load(engine, {1: [("A", 0), ("B", 13 * DAY)], 2: [("A", 0), ("B", 15 * DAY)]})

    assert counts(run(engine, "A", "B", window_s=0)) == [2, 1]
    assert counts(run(engine, "A", "B", window_s=-5)) == [2, 1]
    assert window_seconds(1, "month") == 31 * DAY
    assert window_seconds(2, "week") == 14 * DAY
    assert window_seconds(0, "hour") == 14 * DAY


@pytest.mark.parametrize(("spec", "message"), [
    (FunnelSpec(("A",)), "at least two steps"),
    (FunnelSpec(("A", "")), "needs an event name"),
    (FunnelSpec(("A", "B"), order="sideways"), "Unknown step order"),  # type: ignore[arg-type]
    (FunnelSpec(("A", "B", "C"), exclusions=(Exclusion("x", 1, 1),)), "earlier step to a later one"),
    (FunnelSpec(("A", "B", "C"), exclusions=(Exclusion("x", 2, 1),)), "earlier step to a later one"),
    (FunnelSpec(("A", "B", "C"), exclusions=(Exclusion("x", 1, 3),)), "beyond the last step"),
    (FunnelSpec(("A", "B", "C"), order="unordered", exclusions=(Exclusion("x", 0, 1),)), "whole funnel"),
    (FunnelSpec(("A", "B"), breakdown="shoe_size"), "Cannot break down"),
    (FunnelSpec(("A", "B"), breakdown="a.b", breakdown_kind="event"), "not an event property"),
    (FunnelSpec(("A", "B"), window_s=funnels.MAX_WINDOW_S + 1), "window can be at most 1,830 days"),
    (FunnelSpec(("A", "B"), window_s=float("inf")), "window can be at most 1,830 days"),
    (FunnelSpec(("A", "B"), window_s=float("nan")), "window can be at most 1,830 days"),
    (FunnelSpec(("A", "B"), window_s=10**20), "window can be at most 1,830 days"),
])
def test_invalid_funnels_are_rejected_in_plain_words(spec, message):
    with pytest.raises(FunnelRejected, match=message):
        validate_spec(spec)


def test_the_longest_window_is_accepted_and_a_rejection_is_a_user_facing_error():
    validate_spec(FunnelSpec(("A", "B"), window_s=funnels.MAX_WINDOW_S))
    # The command line and the pages show a TraderLensError as it is, with no "unexpected".
    assert issubclass(FunnelRejected, TraderLensError) and issubclass(FunnelRejected, ValueError)


def test_an_invalid_funnel_is_rejected_before_any_query():
    with pytest.raises(FunnelRejected):
        compute_funnel(sa.create_engine("sqlite://"), FunnelSpec(("A",)))


def test_specs_are_hashable_cache_keys():
    spec = FunnelSpec(["A", "B"], exclusions=[Exclusion("x", 0, 1)])  # type: ignore[arg-type]

    assert hash(spec) == hash(FunnelSpec(("A", "B"), exclusions=(Exclusion("x", 0, 1),)))
    assert math.isfinite(spec.effective_window_s)


@pytest.mark.parametrize("years, whole_seconds", [(1, False), (20, True), (20, False)])
@pytest.mark.parametrize("with_ties", [True, False])
def test_event_sort_order_equals_a_lexsort_whatever_the_key_width(years, whole_seconds, with_ties):
    """The single-key sort packs trader rank, time and tie into 63 bits: in microseconds when they fit,
    else in whole seconds (or ms) when every time is one, else a lexsort; the result must not change."""
    rng = np.random.default_rng(years)
    n = 50_000
    trader = rng.integers(0, 600_000, n)  # ~20 bits of rank
    span_us = years * 365 * 86_400 * 1_000_000
    us = rng.integers(0, span_us, n) + 1_600_000_000_000_000
    if whole_seconds:
        us -= us % 1_000_000
    us[::7] = us[1::7][: len(us[::7])]  # repeated instants
    tie = rng.integers(0, 64, n) if with_ties else None
    order = stream.sort_order(trader, us, tie)
    expected = np.lexsort((tie, us, trader) if with_ties else (us, trader))
    keys = (trader, us, tie) if with_ties else (trader, us)
    for key in keys:
        assert np.array_equal(key[order], key[expected])
