"""Data health panels: load counts, per-table freshness, import history, quality checks and outliers."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analytics import data_health
from analytics.data_health import DRIVER_METRICS, DRIVER_SHARE, RangeDriver, VolumeOutliers
from analytics.filters import TraderFilter
from analytics.periods import DateRange
from components import page
from components.tables import fit_height, render_table

# Freshness bands for the newest row of a table. A broker's feeds land at least daily, so older
# than a day is worth a look and older than a week usually means a stopped feed.
FRESH_HOURS = 24.0
STALE_HOURS = 24.0 * 7

FRESHNESS_STATES = ("fresh", "stale", "old", "future", "empty")
FRESHNESS_COLORS = ("#1f8a5b", "#c8771a", "#b4232f", "#b4232f", "#8a97a6")
SEVERITIES = ("error", "warning", "ok")
SEVERITY_COLORS = ("#b4232f", "#c8771a", "#1f8a5b")

TABLE_LABELS = {
    "traders": "Traders", "accounts": "Accounts", "kyc_events": "KYC events",
    "transactions": "Transactions", "trades": "Trades", "sessions": "Sessions",
    "portal_events": "Portal events", "trader_events": "Trader events (view)",
}

# (label, table, help) of the headline counts.
METRICS = (
    ("Traders", "traders", "Clients, leads included"),
    ("Accounts", "accounts", "Trading logins on MT4 / MT5 / cTrader"),
    ("Transactions", "transactions", "Payment-ledger entries of every kind and status"),
    ("Trades", "trades", "Closed positions"),
    ("Events", "trader_events", "Rows of the unified trader_events stream"),
)


def freshness_state(hours: float | None) -> str:
    """One of FRESHNESS_STATES for a table whose newest row is ``hours`` old (None: no rows)."""
    if hours is None or math.isnan(hours):
        return "empty"
    if hours < -5 / 60:  # the quality checks' 5-minute clock tolerance
        return "future"
    if hours <= FRESH_HOURS:
        return "fresh"
    return "stale" if hours <= STALE_HOURS else "old"


def format_age(hours: float | None) -> str:
    """'12 min ago', '5 h ago', '3 d ago'; '' for no rows; 'in 2 h' for future rows."""
    if hours is None or math.isnan(hours):
        return ""
    size = abs(hours)
    if size < 1:
        text = f"{round(size * 60)} min"
    elif size < 48:
        text = f"{round(size)} h"
    else:
        text = f"{round(size / 24):,} d"
    return f"in {text}" if hours < 0 else f"{text} ago"


def format_count(n: int) -> str:
    """Exact up to six digits ("788,180"), then compact ("1.28 M"), so a metric tile never clips."""
    if n < 1_000_000:
        return f"{n:,}"
    if n < 1_000_000_000:
        return f"{n / 1e6:.3g} M"
    return f"{n / 1e9:.3g} B"


def render_empty_state() -> None:
    """What to do when the database holds no data yet."""
    st.info(
        "No data yet — run `python cli.py seed` or import a file below.",
        title="The database is empty", icon=":material/inbox:",
    )


def render_load_metrics(summary: pd.DataFrame) -> None:
    """Headline row counts from compute_table_summary, plus when the newest event happened."""
    rows = summary.set_index("table")["rows"]
    newest = summary.loc[summary["table"] == "trader_events", "freshness_hours"]
    cols = st.columns(len(METRICS) + 1)
    for col, (label, table, help_text) in zip(cols, METRICS, strict=False):
        count = int(rows.get(table, 0))
        col.metric(label, format_count(count), help=f"{help_text}: {count:,}", border=True)
    cols[-1].metric("Newest event", format_age(newest.iloc[0] if len(newest) else None) or "—",
                    help="Time since the latest row of trader_events", border=True)


def render_table_summary(summary: pd.DataFrame, *, key: str) -> None:
    """Rows, date range and a freshness badge per table (compute_table_summary's frame)."""
    view = pd.DataFrame({
        "Table": summary["table"].map(TABLE_LABELS).fillna(summary["table"]),
        "Rows": summary["rows"],
        # Preformatted so an empty table shows a blank, not "None".
        "From (UTC)": summary["first_at"].dt.strftime("%Y-%m-%d %H:%M").fillna(""),
        "To (UTC)": summary["last_at"].dt.strftime("%Y-%m-%d %H:%M").fillna(""),
        "Freshness": [[freshness_state(h)] for h in summary["freshness_hours"]],
        "Newest row": [format_age(h) for h in summary["freshness_hours"]],
    })
    render_table(
        view, key=key, file_name="traderlens_tables.csv", download=summary,
        height=fit_height(len(view)),
        column_config={
            "Rows": st.column_config.NumberColumn(format="localized"),
            "Freshness": st.column_config.MultiselectColumn(
                options=FRESHNESS_STATES, color=FRESHNESS_COLORS,
                help=f"fresh: newest row within {FRESH_HOURS:.0f} h; stale: within "
                     f"{STALE_HOURS / 24:.0f} days; old: older; future: timed after now"),
        },
    )


def render_recent_imports(recent: pd.DataFrame, *, key: str) -> None:
    """compute_recent_imports' frame, or a note that nothing was imported yet."""
    if recent.empty:
        st.caption("No files imported yet.")
        return
    view = recent.rename(columns={
        "import_id": "Import", "file_name": "File", "kind": "Kind", "rows_read": "Read",
        "rows_inserted": "Inserted", "rows_updated": "Updated", "rows_unchanged": "Unchanged",
        "rows_skipped": "Skipped", "imported_by": "By", "imported_at": "Imported (UTC)",
    })
    render_table(
        view, key=key, file_name="traderlens_imports.csv", download=recent,
        height=fit_height(len(view), max_rows=10),
        column_config={"Imported (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render_quality_checks(checks: pd.DataFrame, *, key: str) -> None:
    """compute_quality_checks' frame: counts per severity, the failing checks, then the rest.

    The failing checks (errors first) go in a table keyed ``key``; the checks that passed are
    listed in a collapsed expander so a healthy database reads as one green line.
    """
    counts = checks["severity"].value_counts()
    with st.container(horizontal=True, gap="small"):
        st.badge(_plural(int(counts.get("error", 0)), "error"), color="red", icon=":material/error:")
        st.badge(_plural(int(counts.get("warning", 0)), "warning"), color="orange",
                 icon=":material/warning:")
        st.badge(f"{int(counts.get('ok', 0))} passed", color="green", icon=":material/check_circle:")
    order = checks["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    ranked = (checks.assign(_order=order)
              .sort_values(["_order", "problem_rows"], ascending=[True, False], kind="stable")
              .drop(columns="_order"))
    failing = ranked[ranked["severity"] != "ok"]
    passed = ranked[ranked["severity"] == "ok"]
    if failing.empty:
        st.success(f"All {len(checks)} checks passed.", icon=":material/verified:")
    else:
        view = pd.DataFrame({
            "Status": [[s] for s in failing["severity"]],
            "Check": failing["check"],
            "Table": failing["table"],
            "Column": failing["column"],
            "Problem rows": failing["problem_rows"],
            "What it means": failing["description"],
            "Example ids": failing["sample_ids"],
        })
        render_table(
            view, key=key, file_name="traderlens_quality_checks.csv", download=ranked,
            height=fit_height(len(view)),
            column_config={
                "Status": st.column_config.MultiselectColumn(
                    options=SEVERITIES, color=SEVERITY_COLORS, width="small"),
                "Problem rows": st.column_config.NumberColumn(format="localized"),
                "What it means": st.column_config.TextColumn(width="large"),
                "Example ids": st.column_config.ListColumn(
                    help="Up to five primary keys of offending rows, smallest first"),
            },
        )
    if not passed.empty:
        with st.expander(f"Checks that passed ({len(passed)})", icon=":material/check_circle:"):
            view = pd.DataFrame({
                "Check": passed["check"], "Table": passed["table"], "Column": passed["column"],
                "What it checks": passed["description"],
            })
            render_table(view, key=f"{key}.passed", file_name="", downloadable=False,
                         height=fit_height(len(view)),
                         column_config={"What it checks": st.column_config.TextColumn(width="large")})


def render_volume_outliers(outliers: VolumeOutliers, *, key: str) -> None:
    """compute_volume_outliers' result: one green line, or how many traders and the worst of them."""
    if not outliers.flagged:
        # A caption, not an alert: the page's only success alert stays the import's outcome.
        st.caption(":material/check_circle: No trader opened a position larger than their equity and "
                   "leverage allowed.")
        return
    shown = outliers.traders
    st.warning(
        f"{_plural(outliers.flagged, 'trader')} opened positions larger than their equity and leverage "
        f"allowed (the worst {len(shown)} below): a missing deposit, a wrong leverage or currency, or a "
        "broken import.", icon=":material/warning:")
    view = pd.DataFrame({
        "Trader": shown["external_id"].fillna(shown["trader_id"].astype(str)),
        "Days over": shown["days_over"],
        "Worst day": shown["worst_day"],
        "Largest position": shown["largest_position_usd"],
        "Margin needed": shown["margin_usd"],
        "Equity at most": shown["equity_usd"],
        "× equity": shown["multiple"],
        "Deposits": shown["deposits_usd"],
        "Volume": shown["volume_usd"],
    })
    usd = st.column_config.NumberColumn(format="dollar")
    render_table(
        view, key=key, file_name="traderlens_volume_outliers.csv", download=shown,
        height=fit_height(len(view)),
        column_config={
            "Days over": st.column_config.NumberColumn(help="Days with at least one such position"),
            "Worst day": st.column_config.DateColumn(format="YYYY-MM-DD"),
            "Largest position": st.column_config.NumberColumn(
                format="dollar", help="The largest notional opened on the worst day"),
            "Margin needed": st.column_config.NumberColumn(
                format="dollar", help="The most margin one position of that day needed: notional ÷ the account's "
                                      f"leverage (1:{data_health.FALLBACK_LEVERAGE} when unknown)"),
            "Equity at most": st.column_config.NumberColumn(
                format="dollar", help="Equity at the day's start plus the day's money in and closed gains"),
            "× equity": st.column_config.NumberColumn(format="%.1f×", help="Margin needed ÷ equity at most"),
            "Deposits": usd, "Volume": st.column_config.NumberColumn(format="dollar", help="Notional opened, all time"),
        },
    )


def _period_label(period: str, start) -> str:
    return f"{start:%b %Y}" if period == "month" else f"Week of {start:%d %b %Y}"


def render_period_drivers(drivers: pd.DataFrame, *, key: str) -> None:
    """compute_period_drivers' frame: one green line, or each month and week one trader decides."""
    if drivers.empty:
        st.caption(":material/check_circle: No month or week of net deposits or volume is decided by one "
                   "trader.")
        return
    st.warning(
        f"{_plural(len(drivers), 'finding')}: one trader decides a month's or week's figure. Read these "
        "periods' changes as that trader's, not the business's.", icon=":material/warning:")
    view = pd.DataFrame({
        "Figure": drivers["metric"].map(DRIVER_METRICS),
        "Period": [_period_label(p, s) for p, s in zip(drivers["period"], drivers["period_start"], strict=True)],
        "Of the": drivers["basis"],
        "Share": drivers["share"] * 100,
        "Trader": drivers["external_id"].fillna(drivers["trader_id"].astype(str)),
        "Trader's part": drivers["trader_value"] - drivers["basis"].eq("change") * drivers["trader_previous"],
        "Figure (USD)": drivers["total"],
        "Period before": drivers["previous"],
    })
    render_table(
        view, key=key, file_name="traderlens_period_drivers.csv", download=drivers,
        height=fit_height(len(view)),
        column_config={
            "Of the": st.column_config.TextColumn(help="change: the trader's part of the change against the period "
                                                       "before; total: their part of the period's figure"),
            "Share": st.column_config.NumberColumn(format="%.0f%%"),
            "Trader's part": st.column_config.NumberColumn(format="dollar"),
            "Figure (USD)": st.column_config.NumberColumn(format="dollar"),
            "Period before": st.column_config.NumberColumn(format="dollar"),
        },
    )


load_range_drivers = page.loader(data_health.compute_range_drivers)


def range_driver_note(driver: RangeDriver) -> str:
    """"Net deposits: one trader accounts for 97% of the change against the previous period." """
    what = "the change against the previous period" if driver.basis == "change" else "the period's total"
    return f"**{driver.label}**: one trader accounts for {driver.share:.0%} of {what}."


def render_range_drivers(date_range: DateRange, trader_filter: TraderFilter) -> None:
    """A short warning when one trader decides the shown range's net deposits or volume (the
    Overview's call); names no trader, which the Data page's data-quality section does."""
    drivers = load_range_drivers(date_range=date_range, trader_filter=trader_filter)
    if not drivers:
        return
    notes = " ".join(range_driver_note(d) for d in drivers)
    st.warning(f"{notes} Read these figures as that trader's, not the business's (more than "
               f"{DRIVER_SHARE:.0%} is one trader's; the Data page names them).", icon=":material/person_alert:")
