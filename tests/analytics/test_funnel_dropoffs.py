"""Who dropped off a funnel and who can still convert (docs/semantics.md, "Funnels", "Who dropped"), with
the details a retention team contacts them with; on DuckDB and PostgreSQL with the hand-built journeys of
test_funnels.py (T0 = Monday 2026-03-02 12:00)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from analytics.funnels import (
    DROPOFF_COLUMNS,
    DROPPED,
    IN_WINDOW,
    FunnelRejected,
    FunnelSpec,
    compute_dropoffs,
    compute_funnel,
    dropoffs_of,
)
from analytics.periods import DateRange
from tests.analytics.test_funnels import DAY, HOUR, at, load

ANA = {"first_name": "Ana", "last_name": "Lima", "email": "ana@example.com", "phone": "+351 900 000 001",
       "country": "PT", "acquisition_channel": "affiliate", "consent_email": True, "consent_sms": False,
       "consent_push": True, "consent_whatsapp": False, "owner": "Desk 7 · Rui"}
NO_CONSENT = {"consent_email": False, "consent_sms": False, "consent_push": False, "consent_whatsapp": False}
ONE_DAY = FunnelSpec(("A", "B"), window_s=DAY)


def _journeys(engine) -> None:
    """The data ends on T0's day (trader 9's Z at T0 + 2 h), so the funnel sees up to 2026-03-03 00:00."""
    load(engine, {
        1: [("A", -5 * DAY)],                   # window closed days ago: dropped
        2: [("A", 0)],                          # window open until 03-03 12:00: in window
        3: [("A", -12 * HOUR)],                 # window ends exactly 03-03 00:00, unseen: in window
        4: [("A", -12 * HOUR - 1)],             # ends 1 s before the data does: dropped
        5: [("A", -5 * DAY), ("B", -5 * DAY + 60)],  # converted: not listed
        6: [("A", -3 * DAY), ("A", -HOUR)],     # a later step 1 restarts the window: in window
        9: [("Z", 2 * HOUR)],
    }, people={1: ANA, **dict.fromkeys((2, 3, 4, 5, 6, 9), NO_CONSENT)})


def test_dropped_and_still_in_window_are_told_apart_at_the_end_of_the_data(engine):
    _journeys(engine)

    got = compute_dropoffs(engine, ONE_DAY, step=1)

    assert got.observed_until == datetime(2026, 3, 3)
    status = dict(zip(got.people["trader_id"], got.people["status"], strict=True))
    assert status == {1: DROPPED, 2: IN_WINDOW, 3: IN_WINDOW, 4: DROPPED, 6: IN_WINDOW}
    assert got.counts == {DROPPED: 2, IN_WINDOW: 3}
    assert got.dropped["trader_id"].tolist() == [4, 1]  # most recent first
    assert got.in_window["trader_id"].tolist() == [2, 3, 6]  # by the kept attempt: 6 reached step 1 3 days ago
    assert got.of_status(None) is got.people and got.of_status(IN_WINDOW).equals(got.in_window)
    ends = dict(zip(got.people["trader_id"], got.people["window_ends_at"], strict=True))
    assert ends[3] == pd.Timestamp(2026, 3, 3) and ends[6] == pd.Timestamp(at(DAY - HOUR))
    # The same list from a computed funnel, given the data's end instead of reading it.
    again = dropoffs_of(engine, compute_funnel(engine, ONE_DAY), step=1, data_end=date(2026, 3, 2))
    pd.testing.assert_frame_equal(again.people, got.people)
    with pytest.raises(ValueError, match="unknown drop-off status"):
        got.of_status("gone")
    with pytest.raises(FunnelRejected, match="from 1 to 1"):
        compute_dropoffs(engine, ONE_DAY, step=2)


def test_a_range_ending_before_the_data_is_observed_only_to_its_own_end(engine):
    _journeys(engine)

    # Only events up to 03-01 count, and the funnel sees up to 03-02 00:00 though the data goes on. Trader 1
    # (A on 02-25) and 6 (kept A on 02-27, its A on 03-02 unseen) are dropped; trader 4's A at 03-01 23:59:59
    # has a window reaching past the range's end: in window.
    march = DateRange(date(2026, 2, 1), date(2026, 3, 1))
    early = compute_dropoffs(engine, ONE_DAY, step=1, date_range=march)
    assert early.observed_until == datetime(2026, 3, 2)
    assert dict(zip(early.people["trader_id"], early.people["status"], strict=True)) == {
        1: DROPPED, 4: IN_WINDOW, 6: DROPPED}
    # With a 3-day window trader 6's (02-27 12:00 to 03-02 12:00) reaches past it too.
    late = compute_dropoffs(engine, FunnelSpec(("A", "B"), window_s=3 * DAY), step=1, date_range=march)
    assert dict(zip(late.people["trader_id"], late.people["status"], strict=True)) == {
        1: DROPPED, 4: IN_WINDOW, 6: IN_WINDOW}


def test_the_list_carries_what_a_retention_team_contacts_people_with(engine):
    _journeys(engine)

    people = compute_dropoffs(engine, ONE_DAY, step=1).people

    assert list(people.columns) == DROPOFF_COLUMNS
    ana = people.set_index("trader_id").loc[1]
    assert {name: ana[name] for name in ANA} == ANA
    assert ana["external_id"] == "EXT-1" and ana["reached_at"] == pd.Timestamp(at(-5 * DAY))
    others = people.set_index("trader_id").loc[[2, 3]]
    assert others["first_name"].isna().all() and others["owner"].isna().all()
    assert not others[["consent_email", "consent_sms", "consent_push", "consent_whatsapp"]].to_numpy().any()


def test_nobody_at_the_step_is_an_empty_list_with_the_columns(engine):
    load(engine, {1: [("A", 0), ("B", 60)]})

    got = compute_dropoffs(engine, FunnelSpec(("A", "B")), step=1)

    assert got.people.empty and list(got.people.columns) == DROPOFF_COLUMNS
    assert got.counts == {DROPPED: 0, IN_WINDOW: 0}
