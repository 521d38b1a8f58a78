"""analytics.export: the one CSV writer of every download, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from analytics.export import neutralise_cell, to_csv


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠"])
def test_text_starting_like_a_formula_gets_a_quote(start):
    hostile = f'{start}HYPERLINK("http://evil.example/x","Click")'
    assert neutralise_cell(hostile) == "'" + hostile
    rows = cells(to_csv(pd.DataFrame({"affiliate_id": [hostile, "IB-7"]})))
    assert rows == [["affiliate_id"], ["'" + hostile], ["IB-7"]]


def test_harmless_text_is_untouched():
    for text in ["registered", "IB 7", "'quoted", " =not at the start", "a=b", ""]:
        assert neutralise_cell(text) == text


def test_numbers_stay_numbers():
    frame = pd.DataFrame({
        "period_start": pd.to_datetime(["2026-03-02", "2026-03-09"]),
        "dormant": [-12, -3], "net_deposits": [-150.5, 20.0], "rate": [np.nan, 0.5],
        "mixed": pd.Series([-4, "-4"], dtype=object),  # a number and a text in one object column
    })
    assert cells(to_csv(frame)) == [
        ["period_start", "dormant", "net_deposits", "rate", "mixed"],
        ["2026-03-02", "-12", "-150.5", "", "-4"],
        ["2026-03-09", "-3", "20", "0.5", "'-4"],  # written for reading: 20, not 20.0 (test_export_readable.py)
    ]


def test_missing_values_are_empty_cells():
    frame = pd.DataFrame({"country": ["DE", None, np.nan], "n": [1.0, np.nan, 2.0],
                          "when": pd.to_datetime(["2026-01-01", None, "2026-01-02"])})
    assert cells(to_csv(frame)) == [["country", "n", "when"], ["DE", "1", "2026-01-01"], ["", "", ""],
                                    ["", "2", "2026-01-02"]]


def test_quotes_commas_and_newlines_read_back_as_the_same_cells():
    tricky = ['say "hi", then\nleave', "line\r\nbreak", 'x","=1+1']
    frame = pd.DataFrame({"event": tricky, "n": [1, 2, 3]})
    rows = cells(to_csv(frame))
    assert [r[0] for r in rows[1:]] == tricky  # none of them starts like a formula: unchanged
    assert [r[1] for r in rows[1:]] == ["1", "2", "3"]


def test_categorical_and_string_columns_and_headers_are_checked():
    frame = pd.DataFrame({"=cmd": pd.Categorical(["@SUM(1)", "ok"]),
                          "breakdown_value": pd.array(["-2+3", "ok"], dtype="string")})
    assert cells(to_csv(frame)) == [["'=cmd", "breakdown_value"], ["'@SUM(1)", "'-2+3"], ["ok", "ok"]]


def test_the_frame_itself_is_not_changed():
    frame = pd.DataFrame({"event": ["=x"]})
    to_csv(frame)
    assert frame["event"].tolist() == ["=x"]
