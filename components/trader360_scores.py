"""Trader 360's scores: for each model that scores the trader, the calibrated probability as the
headline ("Churn within 30 days: 23%"), its band and decile, the model version and when it scored, a
waterfall of the stored explanation and the reasons in plain language; for a model that does not
score the trader, one line saying why; before any model, a pointer to the Predictions page.

Only stored rows are read (``model_scores``, ``score_runs``, the run's medians): nothing is computed
by a model here, so a trader's scores show as fast as their other sections.

The waterfall is Vega-Lite, like every chart of the app: Plotly's 4.7 MB bundle, loaded in
every new tab, added 2-3 s to this page's first render when the timeline was measured with it
(components/timeline.py), against the 300 ms a trader's waterfall must show in. It runs in
calibrated log-odds, the unit in which the parts add up: the base (the model's starting point), the
stored top reasons largest first, the other features together, and the score; the probability is
written at both ends.
"""

from __future__ import annotations

import contextlib
import math
from datetime import datetime

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from analytics import trader360
from analytics.models import registry, scoring
from analytics.models.explain import Explanation
from analytics.models.reasons import describe, reason_text
from analytics.models.scoring import BAND_LABELS, ScoreRun, TraderScore
from analytics.models.specs import MODELS, ModelSpec
from analytics.periods import local_date
from components import page
from components.figures import AXIS_LINE, GRID, TEXT
from components.text import escape_markdown
from connectors.errors import TraderLensError

KEY = "trader360.scores"
PREDICTIONS_PAGE = "pages/predictions.py"
UNIT_NOTE = ("Contributions are in calibrated log-odds: they add up from the base to the score, and each multiplies "
             "the odds by e^contribution (the “odds ×” of each reason). The typical value is the median of the "
             "model's training rows.")
COLOURS = {"Raises the probability": "#c8553d", "Lowers the probability": "#2e6f95", "Base and score": "#5b6b7d"}
COLOUR_OF = {"raises": "Raises the probability", "lowers": "Lowers the probability", "base": "Base and score",
             "score": "Base and score"}
X_TITLE = "Calibrated log-odds (the parts add up; 0 = 50%)"
ROW_HEIGHT = 26

load_scores = page.loader(scoring.trader_scores, ttl="1m")
load_score_run = page.loader(scoring.latest_score_run, ttl="1m")
load_active_run = page.loader(registry.active_run, ttl="1m")
# A saved run's medians and version never change (its status may: shown as of its reading).
load_run = page.loader(registry.get_run, ttl="1h", max_entries=16)
load_profile = page.loader(trader360.load_profile)  # the same cached loader as the page's header


def probability_text(p: float) -> str:
    """A probability as a percentage: whole points, one decimal near 0 and 1 (so 0.3% is not "0%")."""
    return f"{p:.1%}" if p < 0.01 or p > 0.99 else f"{p:.0%}"


def headline(spec: ModelSpec, probability: float) -> str:
    """"Churn within 30 days: 23%"."""
    return f"{spec.title} within {spec.horizon_days} days: {probability_text(probability)}"


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def waterfall_frame(spec: ModelSpec, explanation: Explanation, medians: dict[str, float | None]) -> pd.DataFrame:
    """The waterfall's bars, top to bottom: the base, each stored reason (largest first), the other
    features together (when there are any), the score. Columns: order, step (the axis label), kind
    (base, raises, lowers, score), start and end (calibrated log-odds: a bar spans [start, end];
    base and score start at 0), contribution (the step's own, NaN for base and score), probability
    (after the step), label (written beside the bar), detail (the hover's sentence)."""
    rows = []
    total = explanation.base
    p0 = _sigmoid(total)
    rows.append(("Base: the model's starting point", "base", 0.0, total, math.nan, p0, probability_text(p0),
                 f"The score every trader starts from: log-odds {total:+.2f}, a probability of "
                 f"{probability_text(p0)}."))
    parts = [(describe(r, None), r.contribution, reason_text(spec, r, medians)) for r in explanation.reasons]
    if explanation.rest_count:
        n = explanation.rest_count
        parts.append((f"Other {n} features", explanation.rest, rest_text(spec, explanation)))
    for step, contribution, detail in parts:
        start, total = total, total + contribution
        rows.append((step, "raises" if contribution >= 0 else "lowers", start, total, contribution, _sigmoid(total),
                     f"{contribution:+.2f}", detail))
    p = _sigmoid(total)
    rows.append((f"Score: {probability_text(p)}", "score", 0.0, total, math.nan, p, probability_text(p),
                 f"The trader's score: log-odds {total:+.2f}, a probability of {probability_text(p)}."))
    frame = pd.DataFrame(rows, columns=["step", "kind", "start", "end", "contribution", "probability", "label",
                                        "detail"])
    frame.insert(0, "order", range(len(frame)))
    # Two reasons can read alike (two features with one label); the axis needs distinct names.
    frame["step"] = [s if list(frame["step"][:i]).count(s) == 0 else f"{s} ({i})" for i, s in enumerate(frame["step"])]
    return frame


def waterfall_spec(frame: pd.DataFrame) -> dict:
    """The Vega-Lite spec drawing :func:`waterfall_frame` (passed as the chart's data) as horizontal
    bars. A plain spec: Altair's schema validation took 50-80 ms a chart here, most of this section's
    time for a trader with three scores."""
    y = {"field": "step", "type": "nominal", "sort": list(frame["step"]), "title": None,
         "axis": {"labelLimit": 320, "grid": False}}
    tooltip = [{"field": "step", "type": "nominal", "title": "Step"},
               {"field": "detail", "type": "nominal", "title": "What it means"},
               {"field": "contribution", "type": "quantitative", "title": "Contribution (log-odds)", "format": "+.3f"},
               {"field": "end", "type": "quantitative", "title": "Running total (log-odds)", "format": "+.3f"},
               {"field": "percent", "type": "nominal", "title": "Probability after this step"}]
    colour = {"field": "colour", "type": "nominal", "title": None,
              "scale": {"domain": list(COLOURS), "range": list(COLOURS.values())},
              "legend": {"orient": "top", "symbolType": "square", "labelFontSize": 12}}
    return {
        "height": {"step": ROW_HEIGHT},  # a row per step, whatever their number
        "config": {"view": {"stroke": None},
                   "axis": {"gridColor": GRID, "domainColor": AXIS_LINE, "tickColor": AXIS_LINE, "labelColor": TEXT,
                            "titleColor": TEXT, "titleFontWeight": "normal", "labelFontSize": 12, "titleFontSize": 12}},
        "layer": [
            {"data": {"values": [{"x": 0}]}, "mark": {"type": "rule", "color": AXIS_LINE},
             "encoding": {"x": {"field": "x", "type": "quantitative"}}},
            {"mark": {"type": "bar", "height": 16},
             "encoding": {"x": {"field": "start", "type": "quantitative", "title": X_TITLE}, "x2": {"field": "end"},
                          "y": y, "color": colour, "tooltip": tooltip}},
            {"mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 12, "color": TEXT},
             "encoding": {"x": {"field": "high", "type": "quantitative"}, "y": y,
                          "text": {"field": "label", "type": "nominal"}, "tooltip": tooltip}},
        ],
    }


def chart_data(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`waterfall_frame` with what the spec draws from: each bar's low and high end, the
    probability as text and the colour's name."""
    return frame.assign(low=frame[["start", "end"]].min(axis=1), high=frame[["start", "end"]].max(axis=1),
                        percent=frame["probability"].map(probability_text),
                        colour=frame["kind"].map(COLOUR_OF))


def not_scored_reason(spec: ModelSpec, run: ScoreRun, profile: trader360.TraderProfile) -> str:
    """Why the latest scoring of ``spec`` gave the trader no score (the model's population, from
    :attr:`ModelSpec.population`, or what keeps them out of every model)."""
    when = f"{local_date(run.as_of):%d %b %Y}"  # the reporting zone's day the scoring's data ended before
    title = spec.title.lower()
    if profile.is_test:
        return f"Not scored for {title}: test accounts are never scored."
    if profile.registered_at is None:
        return f"Not scored for {title}: the trader has not registered (a lead); the models score registered traders."
    if profile.registered_at >= run.as_of:
        return (f"Not scored for {title}: registered after the latest scoring (as of {when}); the next scoring "
                "includes them if they are in the model's population.")
    population = spec.population[0].lower() + spec.population[1:]
    return (f"Not scored for {title}: outside the model's population at the latest scoring (as of {when}). "
            f"The {title} model scores {population}")


def _medians(run_id: int) -> tuple[dict[str, float | None], registry.ModelRun | None]:
    try:
        run = load_run(run_id)
    except TraderLensError:  # a run that is gone: the reasons still read, without typical values
        return {}, None
    return run.medians, run


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%d %b %Y %H:%M} UTC"


def rest_text(spec: ModelSpec, explanation: Explanation) -> str:
    """The features beyond the stored reasons, together, in the reasons' words."""
    rest = explanation.rest
    return (f"The other {explanation.rest_count} features together: "
            f"{spec.high_means if rest >= 0 else spec.low_means} (odds ×{math.exp(rest):.2g})")


def reason_lines(spec: ModelSpec, explanation: Explanation, medians: dict[str, float | None]) -> list[str]:
    """The reasons as Markdown list items, largest first, each marked ▲ (raises the probability) or ▼."""
    parts = [(r.contribution, reason_text(spec, r, medians)) for r in explanation.reasons]
    if explanation.rest_count:
        parts.append((explanation.rest, rest_text(spec, explanation)))
    return [f"- :{'red' if c >= 0 else 'blue'}[{'▲' if c >= 0 else '▼'}] {escape_markdown(text)}" for c, text in parts]


def decile_text(decile: int) -> str:
    """"Decile 3 of 10: 20–30% from the top"."""
    return f"Decile {decile} of 10: " + ("the highest 10%" if decile == 1 else f"{decile * 10 - 10}–{decile * 10}% "
                                                                                 "from the top")


def render_score(spec: ModelSpec, score: TraderScore, run: ScoreRun | None, *, key: str) -> None:
    """One model's score of the trader: headline, band, decile, version and date, waterfall, reasons."""
    medians, model_run = _medians(score.run_id)
    with st.container(border=True, key=key):
        st.markdown(f"#### {escape_markdown(headline(spec, score.probability))}")
        st.markdown(f":blue-badge[{escape_markdown(BAND_LABELS.get(score.band, score.band))}] "
                    f":gray-badge[{escape_markdown(decile_text(score.decile))}]")
        version = (f"{spec.title} model v{model_run.version} ({model_run.status})" if model_run is not None
                   else f"{spec.title} model run {score.run_id}")
        scored = (f"scored {_when(run.scored_at)} with data as of {_when(run.as_of)}"
                  if run is not None and run.score_run_id == score.score_run_id else f"scoring {score.score_run_id}")
        outcome = spec.question[0].lower() + spec.question[1:]
        st.caption(escape_markdown(
            f"Probability of: {outcome}. Calibrated: of 100 traders scored like this, about "
            f"{score.probability * 100:.0f} have it. {version}, {scored}. Deciles rank the traders it scored, "
            "1 = the highest 10%."))
        frame = waterfall_frame(spec, score.explanation, medians)
        left, right = st.columns([3, 2])
        with left:
            st.vega_lite_chart(chart_data(frame), waterfall_spec(frame), width="stretch", key=f"{key}.waterfall")
        with right:
            st.markdown("**Why, in plain words** (largest first)")
            st.markdown("\n".join(reason_lines(spec, score.explanation, medians)))
            st.caption(UNIT_NOTE)


def _predictions_link() -> None:
    # Only a link to a page in the app's navigation can be drawn; without it the text above says where.
    with contextlib.suppress(StreamlitPageNotFoundError):
        st.page_link(PREDICTIONS_PAGE, label="Go to Predictions", icon=":material/model_training:")


def render_scores_section(trader_id: int) -> None:
    """The section of :data:`pages.trader.SECTIONS`: every model's score of the trader, or why not."""
    st.subheader("Scores: churn, deposit and first deposit", divider="gray", anchor=False)
    scores = load_scores(trader_id)
    runs = {name: load_score_run(name) for name in MODELS}
    missing: list[ModelSpec] = []
    lines: list[str] = []
    for name, spec in MODELS.items():
        score, run = scores.get(name), runs[name]
        if score is not None:
            render_score(spec, score, run, key=f"{KEY}.{name}")
        elif run is not None:
            lines.append(not_scored_reason(spec, run, load_profile(trader_id)))
        elif (active := load_active_run(name)) is not None:
            lines.append(f"Not scored for {spec.title.lower()}: the {spec.name} model (v{active.version}) has not "
                         f"scored anyone yet; score it on the Predictions page or with `python cli.py score --model "
                         f"{spec.name}`.")
        else:
            missing.append(spec)
    with st.container(key=f"{KEY}.notes"):
        for line in lines:
            st.markdown(f":material/block: {line}")
        if missing:
            if len(missing) == len(MODELS):
                st.info("No model has been trained yet, so no trader has a churn, deposit or first-deposit "
                        "probability. Train one on the Predictions page (or `python cli.py train --model churn`), "
                        "and every trader it scores shows their probability and its reasons here.",
                        icon=":material/model_training:")
            else:
                names = " or ".join(s.title.lower() for s in missing)
                st.caption(f"No {names} model has been trained yet: train one on the Predictions page.")
            _predictions_link()
