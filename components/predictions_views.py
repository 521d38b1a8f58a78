"""The Predictions page's sections: the model picker, the scores (distribution, bands, the top-risk
table with reasons, saving traders as a segment), the model cards side by side, drift, and training
and promotion.

Everything is read from stored tables through cached loaders: runs and scorings for a minute (and
again as soon as a training job finishes or this page writes), score tables keyed by the scoring they
read, so a new scoring is never hidden behind an old cached table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from analytics.export import to_csv
from analytics.models import jobs, registry, scoring, views
from analytics.models.dataset import MIN_HISTORY_DAYS
from analytics.models.jobs import Job
from analytics.models.registry import ModelRun
from analytics.models.scoring import DRIFT_ALERT, ScoreRun
from analytics.models.specs import BAND_LABELS, BAND_NAMES, MODELS, ModelSpec, band_of
from analytics.models.training import GlobalSummary
from analytics.models.views import ScoreFilter, ScoreTable
from analytics.periods import local_date
from analytics.segments import MAX_NAME
from components import labels, page, params, segment_actions, trader360_scores
from components import predictions_actions as actions
from components import predictions_card as card
from components.figures import TEXT, memoised_figure, render_chart, styled
from components.filters import View
from components.rule_builder import trader_link
from components.tables import fit_height
from components.text import escape_markdown

ROWS_SHOWN = 200
POLL_S = 1.5  # seconds between two looks at a running training job
BAND_COLOURS = {"low": "#9fb8d3", "medium": "#f0c05a", "high": "#e8833a", "very_high": "#c0392b"}
TABLE_KEY = "predictions.table_key"  # session state: the key of the table shown (its selection's key)
ADMIN_NOTE = ("Admin action. Sign-in arrives with a later release; until then everyone using TraderLens may "
              "train and promote models.")


# --- loaders ----------------------------------------------------------------------------------------

def list_runs(engine: Engine, model: str, job: tuple | None = None) -> list[ModelRun]:
    """Every run of ``model``, newest first; ``job`` (the newest job's id and status) only keys the
    cache, so a finished training shows its run at once. Retired runs come without their SHAP points
    (up to 60,000 numbers each, which every rerun would copy out of the cache): the page shows the
    points of the active run and the candidates only."""
    return [run if run.status != "retired" else
            replace(run, summary=GlobalSummary(run.summary.rows, run.summary.importance, {}))
            for run in registry.list_runs(engine, model)]


load_runs = page.loader(list_runs, ttl="1m")
load_score_run = page.loader(scoring.latest_score_run, ttl="1m")
load_table = page.loader(views.score_table, spinner="Reading the scores…")
load_band_field = page.loader(views.band_field, ttl="1m")
actions.register_loaders(load_runs, load_score_run, load_table, load_band_field)


@dataclass(frozen=True)
class ModelState:
    """What the page knows of one model: its runs (newest first), the active one, the candidates,
    the newest scoring and the newest training job."""

    spec: ModelSpec
    runs: list[ModelRun]
    score_run: ScoreRun | None
    job: Job | None

    @property
    def active(self) -> ModelRun | None:
        return next((r for r in self.runs if r.status == "active"), None)

    @property
    def candidates(self) -> list[ModelRun]:
        return [r for r in self.runs if r.status == "candidate"]

    def run(self, run_id: int) -> ModelRun | None:
        return next((r for r in self.runs if r.run_id == run_id), None)


def load_state(model: str) -> ModelState:
    # The job is read on every run (one small row): its progress must be live.
    newest = jobs.recent_jobs(page.open_engine(), model, limit=1)
    job = newest[0] if newest else None
    runs = load_runs(model, job=None if job is None else (job.job_id, job.status))
    return ModelState(MODELS[model], runs, load_score_run(model), job)


# --- the picker -------------------------------------------------------------------------------------

def pick_model(*, key: str) -> str:
    """The model picker (bound to ``?<key>=``), and what the chosen model predicts."""
    model = params.segmented_control(st, "Model", list(MODELS), key=key, default="churn", required=True,
                                     format_func=lambda m: MODELS[m].title)
    spec = MODELS[model]
    note = (" Complete disengagement: stricter than the Overview's churn figure, since a trader who still logs "
            "in can still be reached." if spec.name == "churn" else "")
    st.caption(f"**{spec.question}.** Scored: {spec.population}{note}")
    return model


# --- no model yet -----------------------------------------------------------------------------------

def render_no_model(state: ModelState, *, key: str) -> None:
    """The empty state: what to do to get a model, and the training controls."""
    days = MIN_HISTORY_DAYS + 3 * state.spec.horizon_days
    st.info(f"There is no {state.spec.title.lower()} model yet. Train one: it learns from past snapshots of the data "
            f"(it needs at least {days} days of history), takes from seconds to a minute or two, and becomes the "
            "active model at once since there is nothing to replace. Then score it to see every trader's "
            f"probability. `python cli.py train --model {state.spec.name}` does the same.",
            title="No model yet", icon=":material/model_training:")
    render_training(state, key=key)


# --- scores -----------------------------------------------------------------------------------------

SCORE_REQUEST = "predictions.score_request"  # session state: the model whose "Score now" was clicked


def _request_score(model: str) -> None:
    st.session_state[SCORE_REQUEST] = model


def _score_button(model: str, label: str, *, key: str, primary: bool = True) -> None:
    """"Score now": the click is remembered (a callback) and the scoring runs here under a spinner,
    so a rerun before this point (the URL's widgets binding) does not lose it."""
    st.button(label, key=key, icon=":material/calculate:", type="primary" if primary else "secondary",
              on_click=_request_score, args=(model,))
    if st.session_state.get(SCORE_REQUEST) == model:
        del st.session_state[SCORE_REQUEST]
        with st.spinner(f"Scoring every trader the {MODELS[model].title.lower()} model describes…"):
            actions.score(model)
        st.rerun()


def _scored_by(state: ModelState) -> ModelRun | None:
    return None if state.score_run is None else state.run(state.score_run.run_id)


def render_scoring_notice(state: ModelState, *, key: str) -> bool:
    """The state of the scores (none yet, or made by a model that is no longer active) with the
    Score now button; False when there are no scores to show."""
    active, scored = state.active, state.score_run
    if active is None:
        st.warning(f"No {state.spec.title.lower()} model is active: promote one on the Model card tab.",
                   icon=":material/warning:")
        return scored is not None
    if scored is None:
        st.info(f"The {state.spec.title.lower()} model v{active.version} is trained but has not scored anyone yet. "
                "Scoring computes every trader's probability and reasons and stores them (a few seconds on the demo "
                "broker).", title="Not scored yet", icon=":material/pending:")
        _score_button(state.spec.name, "Score now", key=f"{key}.score")
        return False
    by = _scored_by(state)
    if scored.run_id != active.run_id:
        st.warning(f"These scores were made by v{by.version if by else '?'}; v{active.version} is the active model "
                   "now. Score now to replace them.", icon=":material/update:")
        _score_button(state.spec.name, f"Score now with v{active.version}", key=f"{key}.rescore")
    return True


def render_score_summary(state: ModelState, *, key: str) -> None:
    """When and by what the scores were made, their histogram and the traders per band."""
    scored = state.score_run
    by = _scored_by(state)
    st.caption(f"{scored.traders:,} traders scored as of {local_date(scored.as_of):%d %b %Y} by "
               f"{state.spec.title.lower()} v{by.version if by else '?'} (scored {scored.scored_at:%d %b %Y %H:%M} UTC "
               f"by {escape_markdown(scored.scored_by)} in {scored.duration_s:.1f} s). Traders outside the model's "
               "population have no score.")
    dist = scored.distribution
    bands = dist.get("bands", {})
    total = max(sum(bands.values()), 1)
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    with c1:
        if dist.get("counts"):
            render_chart(distribution_chart(tuple(dist["edges"]), tuple(dist["counts"])), key=f"{key}.distribution")
    with c2:
        tiles = st.columns(2)
        for i, band in enumerate(BAND_NAMES):
            n = int(bands.get(band, 0))
            tiles[i % 2].metric(BAND_LABELS[band], f"{n:,}", delta=f"{n / total:.1%} of scored", delta_color="off",
                                delta_arrow="off")
        if dist.get("mean") is not None:
            expected = dist["mean"] * scored.traders
            st.caption(f"Mean probability {dist['mean']:.1%}: if the model is as calibrated as its card says, about "
                       f"{expected:,.0f} of these {scored.traders:,} traders will see “{state.spec.question.lower()}”.")


@memoised_figure
def distribution_chart(edges: tuple[float, ...], counts: tuple[int, ...]) -> alt.Chart:
    """The stored histogram of probabilities, each bar coloured by its band."""
    lo, hi = np.asarray(edges[:-1]), np.asarray(edges[1:])
    band = band_of((lo + hi) / 2)
    data = pd.DataFrame({"lo": lo, "hi": hi, "traders": counts, "band": [BAND_LABELS[b] for b in band]})
    chart = alt.Chart(data).mark_bar(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("lo:Q", title="Probability", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])), x2="hi:Q",
        y=alt.Y("traders:Q", title="Traders"), y2=alt.datum(0),
        color=alt.Color("band:N", scale=alt.Scale(domain=[BAND_LABELS[b] for b in BAND_NAMES],
                                                  range=[BAND_COLOURS[b] for b in BAND_NAMES])),
        tooltip=[alt.Tooltip("lo:Q", title="From", format=".0%"), alt.Tooltip("hi:Q", title="To", format=".0%"),
                 alt.Tooltip("traders:Q", title="Traders", format=","), alt.Tooltip("band:N", title="Band")])
    return styled(chart, height=220)


def render_filters(state: ModelState, view: View, *, key: str) -> ScoreFilter:
    """Band and minimum net deposits (bound to the URL); who is listed also follows the sidebar."""
    c1, c2 = st.columns([3, 2])
    bands = params.multiselect(c1, "Score band", list(BAND_NAMES), key=f"{key}.band", format_func=BAND_LABELS.get,
                               placeholder="All bands")
    minimum = params.number_input(c2, "Net deposits of at least (USD)", key=f"{key}.min_net", min_value=0,
                                  max_value=100_000_000, value=0, step=500,
                                  help="Approved deposits minus approved withdrawals, all history.")
    return ScoreFilter(state.spec.name, state.score_run.score_run_id, view.trader_filter, tuple(bands),
                       float(minimum) if minimum else None)


# Headers of the table (the CSV keeps analytics.models.views' column names).
TABLE_LABELS = {
    "trader_external_id": "Trader id", "name": "Name", "country": "Country", "vip_tier": "VIP tier",
    "owner": "Owner", "band": "Band", "decile": "Decile",
}


def short_band(band: str) -> str:
    """"Very high" for very_high: the band's label without its range."""
    return BAND_LABELS[band].split(" (")[0]


def table_frame(table: ScoreTable) -> pd.DataFrame:
    """The rows as shown: a link to Trader 360, who, the score and its reasons first, then the rest;
    names joined, countries and bands in words."""
    rows = table.rows
    name = (rows["first_name"].fillna("") + " " + rows["last_name"].fillna("")).str.strip()
    shown = pd.DataFrame({
        "open": [trader_link(e) for e in rows["trader_external_id"]],
        "trader_external_id": rows["trader_external_id"], "name": name,
        "probability": rows["probability"], "band": rows["band"].map(short_band),
    })
    for column in [c for c in rows.columns if c.startswith("reason_")]:
        shown[column] = rows[column]
    shown["net_deposits_usd"] = rows["net_deposits_usd"]
    shown["country"] = rows["country"].map(labels.country_name)
    shown["vip_tier"] = rows["vip_tier"].fillna("standard")
    shown["owner"] = rows["owner"]
    shown["decile"] = rows["decile"]
    return shown


def export_frame(table: ScoreTable) -> pd.DataFrame:
    """The CSV's columns: the trader's id and probability first (as `cli.py score --out` writes them), band,
    decile, the reasons, then who they are and their net deposits."""
    rows = table.rows
    reasons = [c for c in rows.columns if c.startswith("reason_")]
    return rows[["trader_external_id", "probability", "band", "decile", *reasons, "first_name", "last_name",
                 "country", "vip_tier", "owner", "net_deposits_usd"]]


def _table_key(key: str, flt: ScoreFilter) -> str:
    # A new filter is a new table: its selection must not carry over to other rows.
    digest = hashlib.sha1(repr(flt).encode()).hexdigest()[:10]
    return f"{key}.{digest}"


def render_table(table: ScoreTable, flt: ScoreFilter, *, key: str, engine: Engine) -> list[str]:
    """The highest-scored traders with their reasons, selectable; the CSV of every trader listed.
    Returns the external ids of the selected rows."""
    shown = table_frame(table)
    total = table.total
    counts = ", ".join(f"{short_band(b).lower()} {n:,}" for b, n in table.bands.items() if n)
    st.caption((f"The {len(shown):,} highest of {total:,} traders listed" if total > len(shown) else
                f"{total:,} traders listed") + (f" ({counts})" if counts else "") +
               ". Select rows to save them as a segment. Reasons are the score's largest contributions, in words; "
               "“odds ×2” doubles the odds.")
    table_key = _table_key(key, flt)
    st.session_state[TABLE_KEY] = table_key
    reasons = [c for c in shown.columns if c.startswith("reason_")]
    with st.container(key=key, gap="xsmall"):
        event = st.dataframe(
            shown, hide_index=True, key=table_key, on_select="rerun", selection_mode="multi-row",
            height=fit_height(len(shown), max_rows=15), row_height=35,
            column_config={
                **TABLE_LABELS,
                "open": st.column_config.LinkColumn("Trader 360", display_text="Open", width="small", pinned=True),
                "probability": st.column_config.ProgressColumn("Probability", format="percent", min_value=0.0,
                                                               max_value=1.0, width="small"),
                "band": st.column_config.TextColumn("Band", width="small"),
                "net_deposits_usd": st.column_config.NumberColumn("Net deposits", format="dollar"),
                **{c: st.column_config.TextColumn(f"Reason {c.rsplit('_', 1)[1]}", width="large") for c in reasons},
            })
        st.download_button(
            f"Download CSV ({total:,} traders)", data=lambda: to_csv(export_frame(views.score_table(engine, flt,
                                                                                                 limit=None))),
            file_name=f"{flt.model}_scores.csv", mime="text/csv", key=f"{key}.download", on_click="ignore",
            icon=":material/download:", type="tertiary", disabled=total == 0)
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    return [str(shown["trader_external_id"].iloc[i]) for i in rows if 0 <= i < len(shown)]


def render_selected_explanation(state: ModelState, table: ScoreTable, selected: list[str], *, key: str) -> None:
    """The first selected trader's score as Trader 360 shows it (waterfall and reasons), read from the
    stored scores: one key lookup, drawn in the page's rerun."""
    if not selected:
        st.caption("Select a row to see that trader's waterfall and reasons here.")
        return
    rows = table.rows
    match = rows.loc[rows["trader_external_id"].astype(str) == selected[0], "trader_id"]
    if match.empty:
        return
    score = scoring.trader_scores(page.open_engine(), int(match.iloc[0])).get(state.spec.name)
    if score is None:  # rescored since the table was read
        return
    name = table_frame(table).loc[match.index[0], "name"] or selected[0]
    st.markdown(f"**Why: {escape_markdown(name)}** ({escape_markdown(selected[0])})"
                + (f", the first of {len(selected):,} selected" if len(selected) > 1 else ""))
    trader360_scores.render_score(state.spec, score, state.score_run, key=key)


def render_save(flt: ScoreFilter, table: ScoreTable, selected: list[str], band_field: str | None, *, key: str,
                engine: Engine, as_of: str) -> None:
    """Save the selected traders, everyone listed, or (with the score fields) a live band rule as a segment."""
    title = MODELS[flt.model].title
    bands = " or ".join(short_band(b).lower() for b in flt.bands)
    choices: dict[str, str] = {}
    if selected:
        choices["selected"] = f"The {len(selected):,} selected trader{'s' if len(selected) != 1 else ''}"
    choices["listed"] = f"All {table.total:,} traders listed"
    if band_field and flt.bands:
        choices["rule"] = f"Whoever is in {bands} at each refresh"
    with st.container(border=True, key=f"{key}.box"):
        st.markdown("**Save as a segment**")
        what = st.radio("Who", list(choices), format_func=choices.get, horizontal=True, key=f"{key}.what",
                        label_visibility="collapsed")
        if what == "rule":
            st.caption(f"A live rule segment on the {title.lower()} band: each refresh takes whoever the latest "
                       "scoring puts in these bands. The sidebar's filters and the net deposits minimum are not part "
                       "of it.")
        else:
            st.caption("A list segment: these traders, fixed, whatever later scorings say. Like every segment it "
                       "filters any page from the sidebar, and the Segments page shows its members.")
        if what == "selected":
            kind, definition = "list", {"external_ids": list(selected)}
        elif what == "rule":
            kind, definition = "rules", views.band_rule(band_field, flt.bands)
        else:
            kind, definition = "list", lambda: {"external_ids": views.score_external_ids(engine, flt)}
        with st.form(f"{key}.form", border=False):
            c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
            c1.text_input("Segment name", max_chars=MAX_NAME, key=f"{key}.name",
                          placeholder=f"{title}: {bands or 'all bands'}, scored as of {as_of}")
            c2.form_submit_button("Save segment", icon=":material/save:", type="primary", key=f"{key}.submit",
                                  on_click=segment_actions.submit_new, args=(kind, definition),
                                  kwargs={"name_key": f"{key}.name"}, disabled=table.total == 0)
        segment_actions.render_flash()  # the save's message here, where the user clicked


def render_scores(state: ModelState, view: View, *, key: str) -> None:
    """The Scores tab."""
    if not render_scoring_notice(state, key=key):
        return
    render_score_summary(state, key=key)
    st.subheader("Traders by score", anchor=False, divider="gray")
    st.caption("Who is listed follows the sidebar (country, segment, channel, test accounts …); its period does "
               "not apply: these are the latest scores.")
    flt = render_filters(state, view, key=key)
    table = load_table(flt, limit=ROWS_SHOWN)
    if table.total == 0:
        st.info("No scored trader matches these filters.", icon=":material/filter_alt_off:")
    _table_and_actions(state, flt, table, key=key)


@st.fragment
def _table_and_actions(state: ModelState, flt: ScoreFilter, table: ScoreTable, *, key: str) -> None:
    # A fragment: selecting a row reruns the table, the explanation and the save box only, so one
    # trader's waterfall shows in a fraction of a second instead of after the whole page's rerun.
    engine = page.open_engine()
    selected = render_table(table, flt, key=f"{key}.table", engine=engine)
    render_selected_explanation(state, table, selected, key=f"{key}.why")
    render_save(flt, table, selected, load_band_field(state.spec.name), key=f"{key}.save", engine=engine,
                as_of=f"{local_date(state.score_run.as_of):%d %b %Y}")


# --- model cards ------------------------------------------------------------------------------------

def render_cards(state: ModelState, *, key: str) -> None:
    """The active run's card beside a candidate's, with the promotion; then the global SHAP summary."""
    active, candidates = state.active, state.candidates
    candidate = None
    if candidates:
        if len(candidates) > 1:
            names = {r.run_id: f"v{r.version} (trained {r.trained_at:%d %b %Y %H:%M})" for r in candidates}
            chosen = st.selectbox("Candidate to compare", list(names), format_func=names.get, key=f"{key}.candidate")
            candidate = state.run(chosen)
        else:
            candidate = candidates[0]
    shown = [r for r in (active, candidate) if r is not None]
    if not shown:
        st.info("No active model and no candidate: see the Training tab.", icon=":material/model_training:")
        return
    if candidate is not None:
        render_promotion(candidate, active, key=key)
    columns = st.columns(len(shown), gap="large", border=len(shown) > 1)
    for column, run in zip(columns, shown, strict=True):
        with column, st.container(key=f"{key}.run{run.run_id}"):
            card.render_card(run, state.spec, key=f"{key}.{run.run_id}")
    st.subheader("What drives the score", anchor=False, divider="gray")
    explained = shown[0]
    if len(shown) > 1:
        names = {r.run_id: f"v{r.version} ({r.status})" for r in shown}
        explained = state.run(st.segmented_control("Run", list(names), format_func=names.get, default=shown[0].run_id,
                                                   required=True, key=f"{key}.shap_run"))
    card.render_shap(explained, key=f"{key}.shap")


def render_promotion(candidate: ModelRun, active: ModelRun | None, *, key: str) -> None:
    """What promotion changes, and the button that makes ``candidate`` the active model."""
    against = "" if active is None else f" in place of v{active.version}, which is kept as retired"
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.caption(f"A new model never replaces the active one by itself: compare the two cards below, then promote. "
               f"Scoring will use v{candidate.version}{against}. {ADMIN_NOTE}")
    c2.button(f"Promote v{candidate.version} to active", key=f"{key}.promote", type="primary",
              icon=":material/verified:", on_click=actions.promote, args=(candidate.run_id,), width="stretch")


# --- drift ------------------------------------------------------------------------------------------

def drift_frame(drift: dict) -> pd.DataFrame:
    """feature, label, psi, alert: the features' PSI, largest first."""
    rows = sorted(drift.get("features", {}).items(), key=lambda kv: -kv[1])
    return pd.DataFrame({"feature": [f for f, _ in rows], "label": [card.feature_label(f) for f, _ in rows],
                         "psi": [v for _, v in rows], "alert": [v > DRIFT_ALERT for _, v in rows]})


@memoised_figure
def drift_chart(frame: pd.DataFrame) -> alt.LayerChart:
    bars = alt.Chart(frame).mark_bar().encode(
        x=alt.X("psi:Q", title="Population stability index (PSI)"),
        y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        color=alt.Color("alert:N", scale=alt.Scale(domain=[False, True], range=["#9fb8d3", card.BAD_RED]), legend=None),
        tooltip=[alt.Tooltip("label:N", title="Feature"), alt.Tooltip("psi:Q", title="PSI", format=".3f")])
    rule = alt.Chart(pd.DataFrame({"x": [DRIFT_ALERT]})).mark_rule(color=TEXT, strokeDash=[4, 4]).encode(x="x:Q")
    return styled(alt.layer(bars, rule), height=max(160, 28 * len(frame) + 40))


def render_drift(state: ModelState, *, key: str) -> None:
    """The Drift tab: PSI of the score and the top features, latest scoring against the training rows."""
    scored = state.score_run
    if scored is None:
        st.info("Drift is measured at each scoring: score the model first (Scores tab).", icon=":material/query_stats:")
        return
    by = _scored_by(state)
    drift = scored.drift or {}
    st.caption(f"The population stability index compares the scoring of {local_date(scored.as_of):%d %b %Y} with the "
               f"rows v{by.version if by else '?'} was trained on: under 0.1 the population is stable, 0.1-0.2 it "
               f"has moved, past {DRIFT_ALERT} it has shifted and the model's figures may no longer hold: retrain.")
    score_psi = drift.get("score")
    c1, c2 = st.columns([1, 3])
    if score_psi is not None:
        c1.metric("Score distribution PSI", f"{score_psi:.3f}",
                  delta="shifted" if score_psi > DRIFT_ALERT else "stable" if score_psi < 0.1 else "moved",
                  delta_color="inverse" if score_psi > DRIFT_ALERT else "off", delta_arrow="off")
    alerts = [a for a in drift.get("alerts", [])]
    if alerts:
        c2.warning("Past 0.2: " + ", ".join(escape_markdown("the score" if a == "score" else card.feature_label(a))
                                            for a in alerts) + ". Train a new model on recent data.",
                   icon=":material/warning:")
    else:
        c2.success("Nothing has shifted past 0.2 since training.", icon=":material/check_circle:")
    frame = drift_frame(drift)
    if not frame.empty:
        render_chart(drift_chart(frame), key=f"{key}.chart")


# --- training and promotion -------------------------------------------------------------------------

@st.fragment(run_every=POLL_S)
def _poll(model: str, job_id: int) -> None:
    """A running job's progress, read again every POLL_S seconds; the whole page reruns when it ends."""
    job = jobs.get_job(page.open_engine(), job_id)
    if job is None or job.finished:
        actions.changed()
        st.rerun()
    st.progress(min(max(job.progress, 0.0), 1.0),
                text=f"Training the {MODELS[model].title.lower()} model: {escape_markdown(job.message or job.status)}")


def render_job(state: ModelState) -> bool:
    """The newest training job of the model: its live progress, or how it ended. True while it runs."""
    job = state.job
    if job is None:
        return False
    if not job.finished:
        st.caption(f"Requested by {escape_markdown(job.requested_by)} at {job.requested_at:%H:%M} UTC.")
        _poll(state.spec.name, job.job_id)
        return True
    ended = f"{job.finished_at:%d %b %Y %H:%M} UTC" if job.finished_at else "at an unknown time"
    if job.status == "done":
        st.success(f"Last training (job {job.job_id}) finished {ended}: {escape_markdown(job.message or 'done')}.",
                   icon=":material/check_circle:")
    elif job.status == "failed":
        st.error(f"Last training (job {job.job_id}) failed {ended}: {escape_markdown(job.error or 'no reason given')}",
                 icon=":material/error:")
    else:
        st.warning(f"Last training (job {job.job_id}) was interrupted (the server stopped while it ran). Train again.",
                   icon=":material/sync_problem:")
    return False


def runs_frame(runs: list[ModelRun]) -> pd.DataFrame:
    """One row per run: version, status, when and by whom, cut-off, the out-of-time figures."""
    return pd.DataFrame({
        "Version": [r.version for r in runs], "Status": [r.status for r in runs],
        "Trained (UTC)": [r.trained_at for r in runs], "By": [r.trained_by for r in runs],
        "Cut-off": [local_date(r.cutoff) for r in runs],
        "ROC AUC": [r.card("test").roc_auc for r in runs], "PR AUC": [r.card("test").pr_auc for r in runs],
        "ECE": [r.card("test").ece for r in runs], "Top-decile lift": [r.card("test").top_decile_lift for r in runs],
        "Beats baseline": [r.beats_baseline for r in runs],
        "Promoted (UTC)": [r.promoted_at for r in runs], "Promoted by": [r.promoted_by for r in runs],
    })


def render_training(state: ModelState, *, key: str) -> None:
    """Train a new model (in the background, with live progress), score now, and every run so far."""
    st.caption(ADMIN_NOTE)
    running = render_job(state)
    c1, c2, _ = st.columns([2, 2, 3])
    c1.button(f"Train a new {state.spec.title.lower()} model", key=f"{key}.train", icon=":material/model_training:",
              type="primary" if not state.runs else "secondary", on_click=actions.train, args=(state.spec.name,),
              disabled=running, help="Runs in the background on the server: this page and everyone else's keep "
              "working. The new model is saved as a candidate (or active, when it is the first).")
    if state.active is not None:
        with c2:
            _score_button(state.spec.name, "Score now", key=f"{key}.score", primary=False)
    if state.runs:
        st.markdown("**Every run**")
        frame = runs_frame(state.runs)
        with st.container(key=f"{key}.runs"):
            st.dataframe(frame, hide_index=True, height=fit_height(len(frame), max_rows=10), column_config={
                "Trained (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                "Promoted (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                "Cut-off": st.column_config.DateColumn(format="YYYY-MM-DD"),
                **{c: st.column_config.NumberColumn(format="%.3f") for c in ("ROC AUC", "PR AUC", "ECE")},
                "Top-decile lift": st.column_config.NumberColumn(format="%.2f×"),
            })
        st.caption("A new run is a candidate until it is promoted on the Model card tab; the active model is the one "
                   "scoring uses, and the one it replaces is kept as retired. `python cli.py train` and "
                   "`python cli.py score` do the same from the command line.")
