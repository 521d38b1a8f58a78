"""The funnel figures take rates as fractions 0..1, as every analytics result gives them, and show
them as percentages only when drawn."""

from __future__ import annotations

import pandas as pd
import pytest

from components import funnel_charts as charts


def test_the_trend_line_plots_the_fraction_and_labels_it_as_a_percentage():
    trends = pd.DataFrame({"period_start": pd.to_datetime(["2026-03-02", "2026-03-09", "2026-03-16"]),
                           "reached_from_step_count": [3, 0, 4], "reached_to_step_count": [2, 0, 1],
                           "conversion_rate": [2 / 3, 0.0, 0.25]})
    figure = charts.trends_figure(trends, period="week")
    assert figure.data["rate"].tolist() == pytest.approx([2 / 3, 0.0, 0.25])
    line = figure.to_dict()["layer"][1]["encoding"]
    assert line["y"]["field"] == "rate" and line["y"]["axis"]["format"] == "%"
    assert {"field": "rate", "format": ".2%", "title": "Converted", "type": "quantitative"} in line["tooltip"]


def test_the_funnel_bars_label_each_step_with_its_share_of_step_one_in_percent():
    steps = pd.DataFrame({"step": [1, 2], "event": ["registered", "ftd"], "count": [400, 100],
                          "conversion_rate": [1.0, 0.25], "conversion_from_previous": [1.0, 0.25], "drop_off": [0, 300],
                          "average_time_to_convert_s": [float("nan"), 60.0],
                          "median_time_to_convert_s": [float("nan"), 60.0]})
    labels = charts.funnel_figure(steps).data["text"].tolist()
    assert labels == ["400 · 100.0%", "100 · 25.0%"]
