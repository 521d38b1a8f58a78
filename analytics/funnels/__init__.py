"""Funnels over the unified event stream ``trader_events``, with the semantics of the leading
product-analytics tools (docs/semantics.md, "Funnels"): ordered, strict and unordered funnels; the
conversion window runs from each attempt's step-1 event (inclusive); a repeated step 1 restarts the
attempt; one event advances an attempt by at most one step; ties at one timestamp resolve by step
order; exclusions; breakdowns with first/last-touch attribution; mean and median time to convert;
conversion trends by entry period; who dropped off where, and who can still convert.

How a call runs, one module each:

1. :mod:`.spec` - what to count (FunnelSpec) and the check that refuses what cannot be counted.
2. :mod:`.sources` - SQL (SQLAlchemy Core, pushed down to DuckDB or PostgreSQL) that selects only
   the events that can matter, as compact columns: trader id, time and a bitmask of the steps and
   exclusions each event matches; rows that provably change nothing are cut before they travel.
3. :mod:`.stream` - the rows fetched as numpy columns (connectors.columnar) and sorted by trader,
   time and tie order.
4. :mod:`.kernels` and :mod:`.people` - a per-trader state machine (numba) walks the sorted arrays
   and returns, per trader, the furthest step of the kept attempt and that attempt's step times.
5. :mod:`.aggregates` - counts, conversion times, breakdowns, histograms and trends as numpy
   aggregates of those arrays. Every rate is a fraction 0..1; percentages are for rendering.
"""

from analytics.funnels.aggregates import (
    DEFAULT_FILTER,
    HISTOGRAM_COLUMNS,
    STEP_COLUMNS,
    TREND_COLUMNS,
    FunnelResult,
    compute_dropoffs,
    compute_funnel,
    compute_funnel_trends,
    compute_time_to_convert,
    dropoffs_of,
    time_to_convert_of,
)
from analytics.funnels.kernels import warm_kernels
from analytics.funnels.people import DROPOFF_COLUMNS, DROPOFF_STATUSES, DROPPED, IN_WINDOW, Dropoffs
from analytics.funnels.sources import BULK_EVENTS
from analytics.funnels.spec import (
    DEFAULT_BREAKDOWN_LIMIT,
    DEFAULT_WINDOW_S,
    MAX_STEPS,
    MAX_WINDOW_DAYS,
    MAX_WINDOW_S,
    NONE_VALUE,
    ORDERS,
    OTHER,
    SEGMENT_BREAKDOWN,
    TRADER_BREAKDOWNS,
    WINDOW_UNITS,
    Attribution,
    BreakdownKind,
    Exclusion,
    FunnelRejected,
    FunnelSpec,
    Order,
    StepFilter,
    validate_spec,
    window_seconds,
)

__all__ = [
    "BULK_EVENTS", "DEFAULT_BREAKDOWN_LIMIT", "DEFAULT_FILTER", "DEFAULT_WINDOW_S", "DROPOFF_COLUMNS",
    "DROPOFF_STATUSES", "DROPPED", "HISTOGRAM_COLUMNS", "IN_WINDOW", "MAX_STEPS", "MAX_WINDOW_DAYS", "MAX_WINDOW_S",
    "NONE_VALUE", "ORDERS", "OTHER", "SEGMENT_BREAKDOWN", "STEP_COLUMNS", "TRADER_BREAKDOWNS", "TREND_COLUMNS",
    "WINDOW_UNITS",
    "Attribution", "BreakdownKind", "Dropoffs", "Exclusion", "FunnelRejected", "FunnelResult", "FunnelSpec",
    "Order", "StepFilter", "compute_dropoffs",
    "compute_funnel", "compute_funnel_trends", "compute_time_to_convert", "dropoffs_of", "time_to_convert_of",
    "validate_spec", "warm_kernels", "window_seconds",
]
