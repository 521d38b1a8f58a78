"""FunnelResult.overall_conversion: the share of the traders who did step 1 that completed the last step."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analytics.funnels import FunnelResult, FunnelSpec

SPEC = FunnelSpec(steps=("registered", "ftd", "trade"), window_s=14 * 86_400)


def result(counts: list[int], spec: FunnelSpec = SPEC) -> FunnelResult:
    rates = [c / counts[0] if counts[0] else math.nan for c in counts]
    return FunnelResult(spec=spec, steps=pd.DataFrame({"step": [1, 2, 3], "event": list(spec.steps),
                                                       "count": counts, "conversion_rate": rates}))


def test_overall_conversion_is_completed_over_entered_as_a_fraction():
    assert result([300, 120, 45]).overall_conversion == 45 / 300


def test_a_funnel_nobody_entered_has_no_overall_conversion():
    assert math.isnan(result([0, 0, 0]).overall_conversion)


def test_a_broken_down_funnel_has_one_conversion_per_value_not_one_overall():
    broken_down = FunnelSpec(steps=SPEC.steps, window_s=SPEC.window_s, breakdown="country")
    with pytest.raises(ValueError, match="per breakdown value"):
        result([3, 2, 1], broken_down).overall_conversion  # noqa: B018 - the property raises
