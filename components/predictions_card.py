"""The model card of a saved run, as the Predictions page shows it: out-of-time figures against the
baseline and a random split, calibration, the reliability diagram, lift and gain by decile, and the
global SHAP summary (importance, beeswarm, dependence plots).

Everything is read from the stored run (:class:`analytics.models.registry.ModelRun`): its metrics,
calibration and :class:`~analytics.models.training.GlobalSummary`; nothing is computed from the model
here. Charts are Altair (components/figures.py) except the beeswarm and dependence plots, which draw
up to 60,000 points: Plotly's WebGL scatter (``scattergl``) draws them at once where Vega-Lite's SVG
and canvas renderers take seconds. Plotly's bundle is loaded by the browser only when the model card's
tab is opened (the page's tabs are lazy).
"""

from __future__ import annotations

import math
from datetime import datetime

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from analytics.features import FEATURES_BY_NAME, KYC_STATE
from analytics.models.metrics import Metrics
from analytics.models.registry import ModelRun
from analytics.models.specs import ModelSpec
from analytics.models.training import GlobalSummary
from analytics.periods import local_date
from components.figures import TEXT, memoised_figure, render_chart, styled
from components.text import escape_markdown

MODEL_BLUE, BASELINE_GREY, GOOD_GREEN, BAD_RED = "#1f5fa8", "#8a99a8", "#2e8b57", "#c0392b"
IMPORTANCE_SHOWN = 15
BEESWARM_FEATURES = 10
DEPENDENCE_FEATURES = 4

# (metric, label, format, better: "higher" / "lower" / None, what it means)
METRICS: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("roc_auc", "ROC AUC", "{:.3f}", "higher",
     "How well the score ranks: the chance that a trader with the outcome is scored above one without. "
     "0.5 is a coin toss, 1 a perfect ranking."),
    ("pr_auc", "PR AUC", "{:.3f}", "higher",
     "Average precision: how pure the top of the list is. For a rare outcome it says more than ROC AUC; "
     "a random score gets the positive rate."),
    ("brier", "Brier score", "{:.4f}", "lower",
     "Mean squared error of the probabilities (0 is perfect). Rewards both ranking and calibration."),
    ("ece", "Calibration (ECE)", "{:.3f}", "lower",
     "Expected calibration error over 10 quantile bins: the average gap between the predicted probability and "
     "how often the outcome happened. 0.02 means a shown 30% comes true 28-32% of the time."),
    ("top_decile_lift", "Top-decile lift", "{:.2f}×", "higher",
     "The outcome's rate among the 10% scored highest, against its rate overall: how much better than "
     "picking traders at random the top of the list is."),
    ("positive_rate", "Positive rate", "{:.1%}", None,
     "How often the outcome happened on the out-of-time slice (what a model that knew nothing would predict)."),
)
SLICES = {"test": "Out of time", "baseline": "Baseline", "random_split": "Random split",
          "test_uncalibrated": "Uncalibrated"}


def feature_label(name: str) -> str:
    """A feature's label from the catalog ("Days since last trade"); the KYC state and unknown names readable."""
    if name == KYC_STATE:
        return "KYC state"
    found = FEATURES_BY_NAME.get(name)
    return found.label if found else name.replace("_", " ").capitalize()


def format_metric(name: str, value: float | None) -> str:
    fmt = next(m[2] for m in METRICS if m[0] == name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


def _day(text: str | None) -> str:
    return "—" if not text else f"{local_date(datetime.fromisoformat(text)):%d %b %Y}"


def comparison_table(run: ModelRun) -> pd.DataFrame:
    """One row per figure of :data:`METRICS` (and the rows counted), one column per slice of :data:`SLICES`."""
    data = {label: [getattr(run.card(which), m[0]) for m in METRICS] + [run.card(which).rows]
            for which, label in SLICES.items() if which in run.metrics}
    frame = pd.DataFrame(data, index=[m[1] for m in METRICS] + ["Rows"])
    shown = frame.astype(object)
    for name, label, *_ in METRICS:
        shown.loc[label] = [format_metric(name, v) for v in frame.loc[label]]
    shown.loc["Rows"] = [f"{int(v):,}" for v in frame.loc["Rows"]]
    return shown.reset_index(names="Figure")


def flattery(run: ModelRun) -> str:
    """How much a random split would flatter the model, in one sentence."""
    oot, rnd = run.card("test").roc_auc, run.card("random_split").roc_auc
    if any(math.isnan(v) for v in (oot, rnd)):
        return "The random-split comparison has no ROC AUC (one slice held a single outcome)."
    gap = rnd - oot
    if gap > 0.005:
        return (f"A random split of the same rows would report ROC AUC **{rnd:.3f}** against **{oot:.3f}** out of "
                f"time: it flatters the model by **{gap:.3f}** ({gap / oot:.1%}), because shuffled rows let a "
                "trader's later snapshots teach the model about their earlier ones. Expect the out-of-time figure.")
    return (f"A random split of the same rows reports ROC AUC {rnd:.3f} against {oot:.3f} out of time: here it "
            "does not flatter the model. The out-of-time figure is still the one to expect.")


def calibration_note(run: ModelRun) -> str:
    before, after = run.card("test_uncalibrated").ece, run.card("test").ece
    cal = run.calibration
    return (f"**Calibration:** Platt scaling on the model's margin (logit p = {cal.slope:.3f} × margin "
            f"{cal.intercept:+.3f}), fitted on one half of the newest complete snapshot and checked on the "
            f"other. It keeps the SHAP contributions additive (isotonic calibration would not). Calibration error "
            f"{before:.3f} before, {after:.3f} after.")


def protocol_note(run: ModelRun) -> str:
    snaps, counts = run.snapshots, run.metrics.get("counts", {})
    train = ", ".join(_day(t) for t in snaps.get("train", []))
    rate = counts.get("train_positive_rate")
    sampled = counts.get("train_rows_before_sampling")
    sample = (f" (a uniform sample of {sampled:,})" if sampled and sampled > counts.get("train_rows", 0) else "")
    return (f"**Snapshots:** trained on {train} ({counts.get('train_rows', 0):,} rows{sample}"
            f"{'' if rate is None else f', {rate:.1%} positive'}); early stopping on {_day(snaps.get('validation'))} "
            f"({counts.get('validation_rows', 0):,} rows); calibrated on half of {_day(snaps.get('test'))} "
            f"({counts.get('calibration_rows', 0):,} rows) and tested out of time on the other half "
            f"({counts.get('test_rows', 0):,} rows). Cut-off {_day(snaps.get('cutoff'))}: nothing at or after it "
            f"was read. {run.metrics.get('best_iteration', 0) + 1} trees.")


def render_tiles(run: ModelRun) -> None:
    """The out-of-time figures as tiles, each against the baseline on the same rows."""
    test, base = run.card("test"), run.card("baseline")
    cols = st.columns(3)
    for i, (name, label, _fmt, better, meaning) in enumerate(METRICS):
        value, against = getattr(test, name), getattr(base, name)
        delta, colour = None, "off"
        if better is not None and not any(math.isnan(v) for v in (value, against)):
            delta = f"{value - against:+.3f} vs baseline"
            colour = "normal" if better == "higher" else "inverse"
        elif name == "positive_rate":
            delta, colour = f"{test.positives:,} of {test.rows:,} traders", "off"
        cols[i % 3].metric(label, format_metric(name, value), delta=delta, delta_color=colour, help=meaning,
                           delta_arrow="off" if name == "positive_rate" else "auto")


def render_card(run: ModelRun, spec: ModelSpec, *, key: str) -> None:
    """One run's card: who and what, the figures, baseline and random split, calibration and protocol,
    the reliability diagram and the lift and gain by decile."""
    when = f"{run.trained_at:%d %b %Y %H:%M} UTC by {escape_markdown(run.trained_by)}"
    promoted = ""
    if run.promoted_at is not None:
        # The registry records the first model of a kind as promoted by "first model of its kind".
        by = run.promoted_by or ""
        promoted = (f" · first of its kind, active since {run.promoted_at:%d %b %Y}"
                    if by.startswith("first ") else
                    f" · promoted {run.promoted_at:%d %b %Y %H:%M} UTC by {escape_markdown(by)}")
    st.markdown(f"#### {spec.title} v{run.version} · {run.status}")
    st.caption(f"Trained {when}{promoted}")
    if not run.beats_baseline:
        test, base = run.card("test"), run.card("baseline")
        st.warning(f"v{run.version} does not beat its baseline: ROC AUC {test.roc_auc:.3f} against {base.roc_auc:.3f}, "
                   f"PR AUC {test.pr_auc:.3f} against {base.pr_auc:.3f} for a logistic regression on recency, "
                   "frequency and money on the same rows. The simpler model ranks at least as well.",
                   icon=":material/trending_down:")
    render_tiles(run)
    st.markdown(flattery(run))
    with st.container(key=f"{key}.figures"):
        st.dataframe(comparison_table(run), hide_index=True, width="stretch")
    baseline = ", ".join(feature_label(f).lower() for f in spec.baseline_features)
    st.caption(f"Out of time: XGBoost on the test half of the newest complete snapshot. Baseline: a logistic "
               f"regression on {baseline}, trained and calibrated on the same rows. Random split: the same XGBoost "
               "on the same rows shuffled. Uncalibrated: before Platt scaling.")
    st.markdown(calibration_note(run))
    st.caption(protocol_note(run))
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Reliability** (quantile bins of the out-of-time half)")
        render_chart(reliability_chart(run.card("test")), key=f"{key}.reliability")
    with c2:
        st.markdown("**Lift by decile** (1 = the 10% scored highest)")
        render_chart(lift_chart(run.card("test"), run.card("baseline")), key=f"{key}.lift")
    st.markdown("**Cumulative gain**: the share of all outcomes found in the top deciles")
    render_chart(gain_chart(run.card("test"), run.card("baseline")), key=f"{key}.gain")


@memoised_figure
def reliability_chart(metrics: Metrics) -> alt.LayerChart:
    """Predicted against observed per quantile bin, with the diagonal a calibrated model follows."""
    data = pd.DataFrame(metrics.reliability)
    top = float(max(data["predicted"].max(), data["observed"].max(), 0.01)) * 1.05
    scale = alt.Scale(domain=[0, top], nice=False)
    diagonal = alt.Chart(pd.DataFrame({"x": [0, top], "y": [0, top]})).mark_line(
        color=BASELINE_GREY, strokeDash=[4, 4]).encode(x="x:Q", y="y:Q")
    points = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=60, filled=True), color=MODEL_BLUE).encode(
        x=alt.X("predicted:Q", title="Mean predicted probability", scale=scale, axis=alt.Axis(format="%")),
        y=alt.Y("observed:Q", title="Observed rate", scale=scale, axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("bin:Q", title="Bin"), alt.Tooltip("predicted:Q", title="Predicted", format=".1%"),
                 alt.Tooltip("observed:Q", title="Observed", format=".1%"),
                 alt.Tooltip("count:Q", title="Traders", format=",")])
    return styled(alt.layer(diagonal, points), height=260)


def _deciles(metrics: Metrics, baseline: Metrics) -> pd.DataFrame:
    return pd.concat([pd.DataFrame(metrics.deciles).assign(model="XGBoost"),
                      pd.DataFrame(baseline.deciles).assign(model="Baseline")], ignore_index=True)


@memoised_figure
def lift_chart(metrics: Metrics, baseline: Metrics) -> alt.LayerChart:
    """Lift per decile, the model's bars beside the baseline's, with the line at 1 (random)."""
    data = _deciles(metrics, baseline)
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("decile:O", title="Decile"), xOffset=alt.XOffset("model:N", sort=["XGBoost", "Baseline"]),
        y=alt.Y("lift:Q", title="Lift"),
        color=alt.Color("model:N", scale=alt.Scale(domain=["XGBoost", "Baseline"], range=[MODEL_BLUE, BASELINE_GREY])),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("decile:O", title="Decile"),
                 alt.Tooltip("lift:Q", title="Lift", format=".2f"), alt.Tooltip("rate:Q", title="Rate", format=".1%"),
                 alt.Tooltip("count:Q", title="Traders", format=",")])
    one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(color=TEXT, strokeDash=[3, 3]).encode(y="y:Q")
    return styled(alt.layer(bars, one), height=260)


@memoised_figure
def gain_chart(metrics: Metrics, baseline: Metrics) -> alt.LayerChart:
    """Cumulative share of positives in deciles 1..k, model and baseline, against random (the diagonal)."""
    data = pd.concat([_deciles(metrics, baseline),
                      pd.DataFrame({"decile": range(1, 11), "gain": np.arange(1, 11) / 10, "model": "Random"})],
                     ignore_index=True)
    data["share"] = data["decile"] / 10
    line = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("share:Q", title="Share of traders contacted (highest scores first)", axis=alt.Axis(format="%")),
        y=alt.Y("gain:Q", title="Share of outcomes found", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", scale=alt.Scale(domain=["XGBoost", "Baseline", "Random"],
                                                   range=[MODEL_BLUE, BASELINE_GREY, "#c5d0db"])),
        strokeDash=alt.condition(alt.datum.model == "Random", alt.value([4, 4]), alt.value([1, 0])),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("decile:O", title="Top deciles"),
                 alt.Tooltip("gain:Q", title="Outcomes found", format=".1%")])
    return styled(line, height=240)


# --- global SHAP ----------------------------------------------------------------------------------

def importance_frame(summary: GlobalSummary, top: int = IMPORTANCE_SHOWN) -> pd.DataFrame:
    """feature, label, mean_abs: the ``top`` features by mean |SHAP| (largest first)."""
    rows = summary.importance[:top]
    return pd.DataFrame({"feature": [f for f, _ in rows], "label": [feature_label(f) for f, _ in rows],
                         "mean_abs": [v for _, v in rows]})


@memoised_figure
def importance_chart(summary: GlobalSummary) -> alt.Chart:
    data = importance_frame(summary)
    chart = alt.Chart(data).mark_bar(color=MODEL_BLUE).encode(
        x=alt.X("mean_abs:Q", title="Mean |contribution| (calibrated log-odds)"),
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        tooltip=[alt.Tooltip("label:N", title="Feature"), alt.Tooltip("mean_abs:Q", title="Mean |SHAP|", format=".3f")])
    return styled(chart, height=max(160, 26 * len(data) + 40))


def _ranks(values: list) -> np.ndarray:
    """Each value's rank in its feature as 0..1 (NaN for a missing value): the beeswarm's colour."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    out = np.full(len(v), np.nan)
    ok = ~np.isnan(v)
    if ok.sum() > 1:
        out[ok] = pd.Series(v[ok]).rank(pct=True, method="average").to_numpy()
    elif ok.sum() == 1:
        out[ok] = 0.5
    return out


def _jitter(shap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vertical offsets in [-0.4, 0.4] scaled by how crowded each point's neighbourhood of
    contributions is: the swarm's width shows where the traders are."""
    if len(shap) == 0:
        return shap
    counts, edges = np.histogram(shap, bins=60)
    where = np.clip(np.searchsorted(edges, shap, side="right") - 1, 0, len(counts) - 1)
    width = 0.4 * counts[where] / max(counts.max(), 1)
    return rng.uniform(-1.0, 1.0, len(shap)) * width


@memoised_figure
def beeswarm_figure(run_key: str, _summary: GlobalSummary) -> go.Figure:
    """Each sampled trader's contribution (x) for the top features (rows), coloured by the feature's
    value rank (blue low, red high, grey missing). ``run_key`` names the run for the cache."""
    features = [f for f, _ in _summary.importance if f in _summary.points][:BEESWARM_FEATURES]
    rng = np.random.default_rng(0)
    fig = go.Figure()
    for row, name in enumerate(features):
        pts = _summary.points[name]
        shap = np.asarray(pts["shap"], dtype=float)
        y = len(features) - 1 - row + _jitter(shap, rng)
        rank = _ranks(pts["value"])
        values = np.array([np.nan if x is None else x for x in pts["value"]], dtype=float)
        missing = np.isnan(rank)
        label = feature_label(name)
        fig.add_trace(go.Scattergl(
            x=shap[~missing], y=y[~missing], mode="markers", name=label, showlegend=False,
            customdata=values[~missing],
            marker={"size": 4, "opacity": 0.6, "color": rank[~missing], "coloraxis": "coloraxis"},
            hovertemplate=f"<b>{label}</b><br>value %{{customdata:,.4g}}<br>contribution %{{x:+.3f}}<extra></extra>"))
        if missing.any():
            fig.add_trace(go.Scattergl(
                x=shap[missing], y=y[missing], mode="markers", name=f"{label} (missing)", showlegend=False,
                marker={"size": 4, "opacity": 0.5, "color": "#b0b8c1"},
                hovertemplate=f"<b>{label}</b><br>value missing<br>contribution %{{x:+.3f}}<extra></extra>"))
    fig.update_layout(
        height=max(260, 42 * len(features) + 80), margin={"l": 10, "r": 10, "t": 10, "b": 40},
        coloraxis={"colorscale": [[0, MODEL_BLUE], [0.5, "#b9a3c9"], [1, BAD_RED]], "cmin": 0, "cmax": 1,
                   "colorbar": {"title": {"text": "Feature value"}, "tickvals": [0, 1], "ticktext": ["low", "high"],
                                "thickness": 10, "len": 0.6}},
        xaxis={"title": {"text": "Contribution to the score (calibrated log-odds)"}, "zeroline": True,
               "zerolinecolor": "#8a99a8"},
        yaxis={"tickvals": list(range(len(features))), "ticktext": [feature_label(f) for f in reversed(features)],
               "range": [-0.6, len(features) - 0.4], "showgrid": False},
    )
    return fig


@memoised_figure
def dependence_figure(run_key: str, _summary: GlobalSummary) -> go.Figure:
    """The top features' value (x) against their contribution (y), one panel each."""
    features = [f for f, _ in _summary.importance if f in _summary.points][:DEPENDENCE_FEATURES]
    rows = max(1, math.ceil(len(features) / 2))
    fig = make_subplots(rows=rows, cols=2, subplot_titles=[feature_label(f) for f in features],
                        horizontal_spacing=0.08, vertical_spacing=0.16)
    for i, name in enumerate(features):
        pts = _summary.points[name]
        values = np.array([np.nan if x is None else x for x in pts["value"]], dtype=float)
        shap = np.asarray(pts["shap"], dtype=float)
        ok = ~np.isnan(values)
        unit = getattr(FEATURES_BY_NAME.get(name), "unit", "")
        unit = {"x": "leverage (×)", "ratio": "share", "flag": "0 = no, 1 = yes"}.get(unit, unit)
        fig.add_trace(go.Scattergl(
            x=values[ok], y=shap[ok], mode="markers", showlegend=False, name=feature_label(name),
            marker={"size": 4, "opacity": 0.45, "color": MODEL_BLUE},
            hovertemplate=f"value %{{x:,.4g}} {unit}<br>contribution %{{y:+.3f}}<extra></extra>"),
            row=i // 2 + 1, col=i % 2 + 1)
        fig.update_xaxes(title_text=unit or None, row=i // 2 + 1, col=i % 2 + 1)
        fig.update_yaxes(title_text="log-odds" if i % 2 == 0 else None, zeroline=True, zerolinecolor="#8a99a8",
                         row=i // 2 + 1, col=i % 2 + 1)
    fig.update_layout(height=300 * rows, margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def render_shap(run: ModelRun, *, key: str) -> None:
    """The global SHAP summary of ``run``: importance, beeswarm and dependence plots, with their unit."""
    summary = run.summary
    if not summary.importance:
        st.caption("This run stored no SHAP summary.")
        return
    st.caption(f"SHAP contributions of {summary.rows:,} traders of the newest complete snapshot, in calibrated "
               "log-odds: a trader's contributions plus the base value add up to the log-odds of their "
               "probability (+0.7 roughly doubles the odds, −0.7 halves them).")
    st.markdown("**Importance**: the mean size of each feature's contribution")
    render_chart(importance_chart(summary), key=f"{key}.importance")
    run_key = f"{run.model}:{run.run_id}:{run.trained_at:%Y%m%d%H%M%S}"
    st.markdown("**Beeswarm**: one dot per trader; right of 0 the feature raises the score, left of 0 it lowers "
                "it; the colour is the trader's value of the feature (blue low, red high, grey missing)")
    st.plotly_chart(beeswarm_figure(run_key, summary), key=f"{key}.beeswarm", config={"displayModeBar": False})
    st.markdown("**Dependence**: how the contribution follows the value, for the top features")
    st.plotly_chart(dependence_figure(run_key, summary), key=f"{key}.dependence", config={"displayModeBar": False})
