"""benchmarks/retention_blanks.py accepts exactly the change "0 became null after the data's last day"."""

from __future__ import annotations

from datetime import date

from benchmarks.retention_blanks import check_blanks

ARGV = ["retention", "--start-event", "ftd", "--return-event", "trade", "--period", "month", "--intervals", "3"]
END = date(2026, 11, 30)
BEFORE = [{"cohort_start": "2026-10-01", "size": 5, "values": [5, 2, 0]},
          {"cohort_start": "2026-11-01", "size": 4, "values": [4, 0, 0]}]


def _after(*rows: list) -> list[dict]:
    return [{**old, "values": values} for old, values in zip(BEFORE, rows, strict=True)]


def test_zeros_after_the_data_becoming_null_is_the_only_accepted_change():
    found = check_blanks(ARGV, BEFORE, _after([5, 2, None], [4, None, None]), END)
    assert (found.cells, found.blanked, found.problems) == (6, 3, ())


def test_any_other_difference_is_reported():
    # A cell in November (not after the data's end) turned null; a changed count; a future cell left at 0.
    assert check_blanks(ARGV, BEFORE, _after([5, None, None], [4, None, None]), END).problems == (
        "cohort 2026-10-01 column 1: 2 before, None now",)
    assert check_blanks(ARGV, BEFORE, _after([5, 3, None], [4, None, None]), END).problems == (
        "cohort 2026-10-01 column 1: 2 before, 3 now",)
    assert check_blanks(ARGV, BEFORE, _after([5, 2, 0], [4, None, None]), END).problems == (
        "cohort 2026-10-01 column 2: its period starts after 2026-11-30 but it is 0, not null",)
    resized = [{**BEFORE[0], "size": 6}, BEFORE[1]]
    assert check_blanks(ARGV, BEFORE, resized, END).problems == ("cohorts or sizes differ",)


def test_weeks_follow_the_reports_week_start():
    argv = ["retention", "--period", "week", "--week-start", "sunday"]
    before = [{"cohort_start": "2026-11-22", "size": 3, "values": [3, 1, 0]}]
    # Sunday weeks: 11-22, 11-29 (holds the data's last day, 11-30) and 12-06, which has not happened.
    found = check_blanks(argv, before, [{**before[0], "values": [3, 1, None]}], END)
    assert (found.blanked, found.problems) == (1, ())
