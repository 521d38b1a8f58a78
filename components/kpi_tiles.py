"""KPI tiles: compact values, period-over-period deltas coloured by whether up is good, definitions on hover."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import streamlit as st

from analytics.kpis import NOTES, Kpi

# Values are kept to about eight characters so none is cut off in a tile.
NO_VALUE = "—"
NO_COMPARISON = "no comparison"


def _compact(x: float, *, decimals_small: int = 0) -> str:
    """Exact below 10,000 ("9,876"), then three significant digits: "12.3 K", "561 K", "1.57 M", "2.04 B"."""
    size = abs(x)
    if round(size, decimals_small) < 10_000:
        text = f"{size:,.{decimals_small}f}"
    else:
        for divisor, suffix in ((1e3, "K"), (1e6, "M"), (1e9, "B"), (1e12, "T")):
            scaled = float(f"{size / divisor:.3g}")
            if scaled < 1000 or suffix == "T":
                break
        text = f"{scaled:,g} {suffix}"
    return f"-{text}" if x < 0 and text.strip("0.,") else text


def format_value(value: float | None, unit: str) -> str:
    """A KPI value as a tile shows it: "$1.23 M", "12,345", "23.4%", "5.2 h" / "3.1 d", "—" when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if unit == "usd":
        text = _compact(value)
        return f"-${text[1:]}" if text.startswith("-") else f"${text}"
    if unit == "pct":
        return f"{value * 100:.1f}%"
    if unit == "hours":
        return f"{value:.1f} h" if abs(value) < 48 else f"{value / 24:.1f} d"
    # Counts that are averages (DAU) keep a decimal while they are small.
    decimals = 1 if unit == "count" and value != int(value) and abs(value) < 100 else 0
    return _compact(value, decimals_small=decimals)


def format_delta(kpi: Kpi) -> str | float | None:
    """The change against the previous period: percentage points for rates ("+1.2 pp"), else relative
    ("+12.3%"); 0 (a grey delta) when unchanged; None when there is nothing to compare with."""
    if kpi.value is None or kpi.previous is None:
        return None
    if kpi.unit == "pct":
        points = (kpi.value - kpi.previous) * 100
        return 0 if round(points, 1) == 0 else f"{points:+.1f} pp"
    if kpi.previous <= 0 < kpi.value or kpi.value < 0 <= kpi.previous or kpi.previous < 0:
        # A relative change across or below zero (a P&L from -$0.4 K to +$8.8 K) reads as nonsense
        # ("+2,469%"); the difference itself does not.
        diff = kpi.value - kpi.previous
        return 0 if diff == 0 else ("+" if diff > 0 else "") + format_value(diff, kpi.unit)
    change = kpi.change
    if change is None:
        return None
    return 0 if round(change * 100, 1) == 0 else f"{change * 100:+.1f}%"


def tile_help(kpi: Kpi, previous_label: str) -> str:
    """Hover text: the definition and the previous period's value."""
    return f"{kpi.definition}\n\n**{previous_label}:** {format_value(kpi.previous, kpi.unit)}"


TILES_PER_ROW = 6
# Streamlit's metric value is 2.25rem; six tiles to a row on a laptop-wide screen need it smaller so
# "-$166.1 K" is never cut off. Scoped to the tile containers only.
_TILE_CSS = """<style>
div[class*="st-key-{key}"] [data-testid="stMetricValue"] {{ font-size: 1.6rem; }}
div[class*="st-key-{key}"] [data-testid="stMetricLabel"] p {{ font-size: 0.85rem; }}
</style>"""


# On a phone Streamlit stacks columns one per row: 23 Overview tiles filled 3,400 px before the first
# chart. Below 640 px (Streamlit's own stacking width) tiles go three to a row, smaller, and a row's
# empty columns collapse: any row of columns holding metrics directly, on every page.
_ROW = ('[data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] > [data-testid="stVerticalBlock"]'
        ' > [data-testid="stElementContainer"] > [data-testid="stMetric"])')
_THIRD = "calc(33.3% - 0.3rem)"
_PHONE_CSS = f"""<style>
@media (max-width: 640px) {{
  {_ROW} {{ gap: 0.4rem; }}
  {_ROW} > [data-testid="stColumn"] {{ min-width: {_THIRD} !important; flex: 1 1 {_THIRD} !important; }}
  {_ROW} > [data-testid="stColumn"]:not(:has([data-testid="stMetric"])) {{ display: none; }}
  [data-testid="stMetric"] {{ padding: 0 !important; }}
  [data-testid="stMetric"] > div {{ padding: 0.4rem 0.45rem !important; }}
  /* Labels wrap instead of ending in "…": a third of a phone is too narrow for "Net deposits". */
  [data-testid="stMetricLabel"] [data-testid="stMarkdownContainer"],
  [data-testid="stMetricLabel"] p {{ white-space: normal !important; line-height: 1.15; }}
  [data-testid="stMetricLabel"] p {{ font-size: 0.72rem !important; }}
  [data-testid="stMetricValue"] {{ font-size: 1.15rem !important; }}
  [data-testid="stMetricDelta"] {{ font-size: 0.7rem !important; }}
}}
</style>"""


def render_phone_style() -> None:
    """Condensed metric tiles on narrow screens, for the whole app (a style only: it takes no space)."""
    st.html(_PHONE_CSS)


def render_kpi_tile(kpi: Kpi, *, previous_label: str) -> None:
    delta = format_delta(kpi)
    # A grey "no comparison" keeps every tile the same height and says why there is no arrow.
    st.metric(
        kpi.label, format_value(kpi.value, kpi.unit), delta=NO_COMPARISON if delta is None else delta,
        delta_color="off" if delta is None else "normal" if kpi.higher_is_better else "inverse",
        delta_arrow="off" if delta is None else "auto",
        help=tile_help(kpi, previous_label), border=True,
    )


def note_line(count: Kpi | None, amount: Kpi | None) -> str | None:
    """The line under the FTD tile: how many of the period's FTDs were charged back or reversed since
    (None when none were, or the figures are absent)."""
    if count is None or not count.value:
        return None
    money = f" ({format_value(amount.value, amount.unit)})" if amount is not None and amount.value else ""
    return f"{format_value(count.value, count.unit)} charged back or reversed since{money}"


def render_kpi_groups(kpis: Sequence[Kpi], groups: Mapping[str, Sequence[str]], *, key: str,
                      previous_label: str, notes: Mapping[str, Sequence[str]] = NOTES) -> None:
    """One labelled row of tiles per group, on a six-column grid; groups without any of ``kpis``
    are skipped. ``previous_label`` names the comparison period in the hover text. ``notes`` maps a
    tile to the KPIs (count, amount) shown as a line under it (the FTDs charged back)."""
    by_key = {k.key: k for k in kpis}
    st.html(_TILE_CSS.format(key=key))
    with st.container(key=key, gap="small"):
        for group, keys in groups.items():
            present = [by_key[k] for k in keys if k in by_key]
            if not present:
                continue
            st.markdown(f"**{group}**")
            for start in range(0, len(present), TILES_PER_ROW):
                columns = st.columns(TILES_PER_ROW, gap="small")
                for column, kpi in zip(columns, present[start:start + TILES_PER_ROW], strict=False):
                    with column:
                        render_kpi_tile(kpi, previous_label=previous_label)
                        line = note_line(*(by_key.get(k) for k in notes.get(kpi.key, ())[:2])) \
                            if kpi.key in notes else None
                        if line:
                            st.caption(line, help=by_key[notes[kpi.key][0]].definition)
