"""The retention figures and tables leave periods that have not happened yet blank, never 0.

The result is built by hand: a monthly matrix whose range (to September) runs past the data (which
ends on 20 August), as a page would get for a range ending after the newest day with data.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd

from analytics.cohorts import RetentionResult, RetentionSpec
from components import cohort_charts as charts

STARTS = pd.to_datetime(["2026-07-01", "2026-08-01", "2026-09-01"])
# Rows July, August, September; columns 0-3. September, and every cell from September on, has not
# happened: the query counted nothing there, so the frames hold 0.
COUNTS = np.array([[10, 4, 0, 0], [20, 0, 0, 0], [0, 0, 0, 0]])


def _result() -> RetentionResult:
    spec = RetentionSpec(start_event="ftd", return_event="trade", period="month", intervals=4)
    counts = pd.DataFrame(COUNTS, columns=[0, 1, 2, 3])
    counts.insert(0, "size", COUNTS[:, 0].copy())
    counts.insert(0, "cohort_start", STARTS)
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.where(COUNTS[:, :1] > 0, COUNTS / np.maximum(COUNTS[:, :1], 1), np.nan)
    percentages = pd.DataFrame(fractions, columns=[0, 1, 2, 3])
    percentages.insert(0, "size", COUNTS[:, 0].copy())
    percentages.insert(0, "cohort_start", STARTS)
    return RetentionResult(spec=spec, counts=counts, percentages=percentages, last_period=date(2026, 9, 1),
                           data_end=date(2026, 8, 20))


def test_the_table_and_its_csv_leave_unhappened_periods_blank():
    shown, export = charts.retention_table(_result(), show="counts")
    # August is not over on 20 August: July's month 1 and August's size are unfinished (marked *).
    assert shown[["Month 0", "Month 1", "Month 2", "Month 3"]].values.tolist() == [
        ["10", "4*", "", ""], ["20*", "", "", ""], ["", "", "", ""]]
    csv_rows = export.to_csv(index=False).splitlines()
    assert csv_rows[1].startswith("2026-07-01,10,True,10,4,,,1.0,0.4,,,True,False,,")
    assert csv_rows[2].startswith("2026-08-01,20,False,20,,,,1.0,,,,False,,,")
    percent, _ = charts.retention_table(_result(), show="percent")
    assert percent.loc[0, "Month 1"] == "40.0%*" and percent.loc[0, "Month 2"] == ""


def test_the_heatmap_draws_only_cells_that_happened():
    chart = charts.retention_heatmap(_result(), show="counts")
    cells = chart.layer[1].data
    assert sorted(zip(cells["cohort"], cells["column"], cells["count"], strict=True)) == [
        ("Aug 2026", "Month 0", 20.0), ("Jul 2026", "Month 0", 10.0), ("Jul 2026", "Month 1", 4.0)]


def test_curves_and_the_average_do_not_count_unhappened_periods_as_zero():
    result = _result()
    average = result.average(include_unfinished=True)  # August's cells are unfinished: see the next test
    # Month 1: only July has one (4 of 10); August's September has not happened, so it is not a 0 of 20.
    assert average["rate"][1] == 0.4 and average["cohorts"].tolist() == [2, 1, 0, 0]
    assert math.isnan(average["rate"][2])
    chart = charts.retention_curves(result, include_unfinished=True)
    thin, bold = chart.layer[0].data, chart.layer[1].data
    assert sorted(zip(thin["cohort"], thin["x"], thin["y"], strict=True)) == [
        ("Aug 2026", 0, 1.0), ("Jul 2026", 0, 1.0), ("Jul 2026", 1, 0.4)]
    assert bold["x"].tolist() == [0, 1] and bold["y"].tolist() == [1.0, 0.4]


def test_unfinished_cells_are_pale_and_marked_in_the_heatmap_and_left_out_of_the_curves():
    chart = charts.retention_heatmap(_result(), show="percent")
    sizes, cells = chart.layer[0].data, chart.layer[1].data
    marked = {(c, k): (u, t, s) for c, k, u, t, s in zip(cells["cohort"], cells["column"], cells["unfinished"],
                                                          cells["text"], cells["status"], strict=True)}
    assert marked[("Jul 2026", "Month 0")] == (False, "100.0%", "Final")
    unfinished, text, status = marked[("Jul 2026", "Month 1")]
    assert unfinished and text == "40.0%*" and status.startswith("Unfinished: the month is not over (data to 20 Aug")
    assert marked[("Aug 2026", "Month 0")][:2] == (True, "100.0%*")
    assert sizes["text"].tolist()[:2] == ["10", "20*"]  # September has not begun
    assert chart.layer[1].to_dict()["encoding"]["opacity"]["condition"]["value"] == charts.UNFINISHED_OPACITY

    # By default the curves and the average use only July's month 0, the one finished cell.
    assert _result().average()["cohorts"].tolist() == [1, 0, 0, 0]
    curves = charts.retention_curves(_result())
    thin, bold = curves.layer[0].data, curves.layer[1].data
    assert list(zip(thin["cohort"], thin["x"], thin["y"], strict=True)) == [("Jul 2026", 0, 1.0)]
    assert bold["x"].tolist() == [0]
