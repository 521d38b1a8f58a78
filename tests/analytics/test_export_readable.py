"""analytics.export writes numbers for reading (docs/semantics.md, "Downloads"): whole numbers without a
decimal point, fractions to 4 decimals, other decimals to 2, missing values empty."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from analytics.export import to_csv


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_counts_held_as_floats_are_written_as_integers():
    # An outer join or a NaN makes a count column float: 357.0 in the old downloads.
    frame = pd.DataFrame({"registrations": [357.0, 0.0, np.nan], "high": [2.0, 5.0, np.nan]})
    assert cells(to_csv(frame)) == [["registrations", "high"], ["357", "2"], ["0", "5"], ["", ""]]


def test_fractions_keep_four_decimals_and_other_decimals_two():
    frame = pd.DataFrame({
        "ftd_conversion": [0.19756838905775076, 1.0, np.nan],  # a rate: 19.76%
        "value_per_trader": [1573.9869230769223, -0.004, 12.5],  # money: cents
        "median_time_to_convert_s": [42753.25749211357, 17407.0, np.nan],
        "quick_ratio": [1.23456, 0.5, 3.0],  # a ratio above 1 is not a fraction
    })
    assert cells(to_csv(frame))[1:] == [
        ["0.1976", "1573.99", "42753.26", "1.23"],
        ["1", "0", "17407", "0.5"],
        ["", "12.5", "", "3"],
    ]


def test_integers_booleans_dates_and_text_are_written_as_they_are():
    frame = pd.DataFrame({
        "trader_id": [12701, 3813], "size": pd.array([65, None], dtype="Int64"), "complete": [True, False],
        "cohort_start": pd.to_datetime(["2026-09-07", "2026-09-14"]), "country": ["GB", "-NG"],
    })
    assert cells(to_csv(frame)) == [["trader_id", "size", "complete", "cohort_start", "country"],
                                    ["12701", "65", "True", "2026-09-07", "GB"], ["3813", "", "False", "2026-09-14",
                                                                                  "'-NG"]]


def test_negative_numbers_are_numbers_not_neutralised_text():
    frame = pd.DataFrame({"net_deposits": [-150.256, 20.5], "dormant": [-12.0, -3.0], "change": [-0.123456, 0.5]})
    assert cells(to_csv(frame))[1:] == [["-150.26", "-12", "-0.1235"], ["20.5", "-3", "0.5"]]


def test_numbers_held_in_an_object_column_follow_the_same_rules():
    # A frame built from records can hold its numbers as Python objects; text among them keeps them text.
    frame = pd.DataFrame({"share": pd.Series([1.0220117086964622, 0.5, None], dtype=object),
                          "trader_value": pd.Series([0.0, 12.0, None], dtype=object),
                          "mixed": pd.Series([-4, "-4", None], dtype=object)})
    assert cells(to_csv(frame))[1:] == [["1.02", "0", "-4"], ["0.5", "12", "'-4"], ["", "", ""]]
