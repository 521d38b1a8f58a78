"""The clustering studio (the Segments page's Clusters tab): choose features, transform, algorithm and
k; see the clusters with editable names, their profiles as a z-score heat map, the diagnostics across
k with their stability, a 2-D map and how little KYC explains them; save the clustering and turn a
cluster into a segment.

Every figure comes from a cached loader keyed by the snapshot's time and the choices, so going back
to a setting already seen is instant; diagnostics and the KYC comparison (seconds) run on demand.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from analytics import features
from analytics import segmentation as seg
from analytics.export import to_csv
from components import page, params, segment_actions
from components.errors import render_error
from components.figures import render_chart, styled
from components.tables import fit_height, render_table
from components.text import escape_markdown
from connectors.errors import TraderLensError
from server import engine as runtime

DIAGNOSTIC_MEASURES = {
    "silhouette": ("Silhouette", "higher is better"),
    "calinski_harabasz": ("Calinski-Harabasz", "higher is better"),
    "davies_bouldin": ("Davies-Bouldin", "lower is better"),
    "bic": ("BIC", "lower is better"),
    "stability": ("Stability (ARI)", "higher is better; 0.8+ is stable"),
    "noise_share": ("Noise share", "HDBSCAN: traders left unclustered"),
}
FEATURE_GROUPS = {"trading": "Trading", "transactions": "Money", "profitability": "P&L", "holding": "Holding",
                  "asset_mix": "Asset mix", "leverage": "Leverage", "sessions": "Engagement", "recency": "Recency",
                  "tenure": "Tenure", "trends": "Trend", "kyc": "KYC"}
CLUSTERABLE = tuple(f.name for f in features.FEATURES)
# Qualitative colours that stay apart for up to 20 clusters; noise is grey.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
           "#843c39", "#8ca252")
NOISE_GREY = "#b8c2cc"


# --- loaders: the snapshot once, every computation on top of it, all cached ------------------------


def _as_of(engine: Engine) -> datetime:
    return features.snapshot_time(engine, None)


def _previous(engine: Engine, run_id: int | None) -> seg.PreviousRun | None:
    return None if run_id is None else seg.previous_run(engine, run_id)


def fit_clustering(engine: Engine, as_of: datetime, settings: str, previous_run_id: int | None) -> seg.Clustering:
    """The clustering of the snapshot as of ``as_of`` for ``settings`` (ClusterSpec.settings() as JSON)."""
    return seg.fit_clustering(load_snapshot(as_of=as_of), seg.ClusterSpec.from_settings(json.loads(settings)),
                              previous=_previous(engine, previous_run_id))


def compute_diagnostics(engine: Engine, as_of: datetime, settings: str, k_values: tuple[int, ...]) -> seg.Diagnostics:
    return seg.compute_diagnostics(load_snapshot(as_of=as_of), seg.ClusterSpec.from_settings(json.loads(settings)),
                                   k_values=k_values)


def compute_projection(engine: Engine, as_of: datetime, settings: str, previous_run_id: int | None) -> seg.Projection:
    return seg.compute_projection(load_snapshot(as_of=as_of), load_clustering(as_of, settings, previous_run_id))


def compute_kyc(engine: Engine, as_of: datetime, settings: str, previous_run_id: int | None) -> seg.KycComparison:
    return seg.compute_kyc_comparison(engine, load_snapshot(as_of=as_of),
                                      load_clustering(as_of, settings, previous_run_id))


load_as_of = page.loader(_as_of, ttl="1m")
load_snapshot = page.loader(features.compute_features, spinner="Reading every trader's features…")
load_clustering = page.loader(fit_clustering, spinner="Clustering…")
load_diagnostics = page.loader(compute_diagnostics, spinner="Refitting every k on bootstrap samples…")
load_projection = page.loader(compute_projection)
load_kyc = page.loader(compute_kyc, spinner="Cross-validating KYC against behaviour…")
load_runs = page.loader(seg.list_runs, ttl="1m")


# --- the choices ---------------------------------------------------------------------------------------


def _feature_label(name: str) -> str:
    f = features.FEATURES_BY_NAME[name]
    return f"{f.label} ({FEATURE_GROUPS.get(f.group, f.group)})"


def _run_label(runs: pd.DataFrame, run_id: int | None) -> str:
    if run_id is None:
        return "None: number clusters afresh"
    row = runs.set_index("run_id").loc[run_id]
    return f"#{run_id} {row['name']} ({row['created_at']:%d %b %Y})"


def render_controls(key: str, runs: pd.DataFrame) -> tuple[seg.ClusterSpec, int | None]:
    """The studio's controls (bound to the URL); the spec they describe and the run whose ids to continue."""
    with st.container(border=True):
        chosen = params.multiselect(
            st, "Features", list(CLUSTERABLE), key=f"{key}.features", format_func=_feature_label,
            default=list(features.DEFAULT_CLUSTER_FEATURES), placeholder="Choose the features to cluster on",
            help="Behaviour first: the frequency and volume of trades and of money movements, then how the trader "
                 "trades (holding time, instruments, leverage, automation) and engagement. Windowed counts and "
                 "recency describe when a trader was active rather than how, and split each kind of trader into "
                 "its active and dormant halves.")
        c1, c2, c3, c4 = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
        algorithm = params.segmented_control(c1, "Algorithm", list(seg.ALGORITHMS), key=f"{key}.algorithm",
                                             default="kmeans", required=True, format_func=seg.ALGORITHMS.get,
                                             help="k-means (MiniBatch past 20,000 traders) and the Gaussian mixture "
                                                  "make k clusters; HDBSCAN finds its own number and leaves traders "
                                                  "far from every dense group as noise.")
        density = algorithm == "hdbscan"
        k = params.number_input(c2, "Clusters (k)", key=f"{key}.k", min_value=seg.MIN_K, max_value=seg.MAX_K,
                                value=6, step=1, disabled=density)
        min_size = params.number_input(c3, "Min cluster size", key=f"{key}.min_size", min_value=0,
                                       max_value=100_000, value=0, step=10, disabled=not density,
                                       help="HDBSCAN's smallest cluster; 0: 1% of the traders (at least 10).")
        seed = params.number_input(c4, "Seed", key=f"{key}.seed", min_value=0, max_value=1_000_000, value=0, step=1,
                                   help="The same data, choices and seed give the same clusters.")
        c5, c6, c7, c8 = st.columns([2, 3, 2, 4], vertical_alignment="bottom")
        log1p = params.toggle(c5, "log1p", key=f"{key}.log1p", value=True,
                              help="Log of counts, rates, amounts and durations (signed for P&L), so that a few "
                                   "very large traders do not make clusters of their own. Shares stay as they are.")
        scaling = params.segmented_control(c6, "Scaling", list(seg.SCALINGS), key=f"{key}.scaling",
                                           default="standard", required=True, format_func=seg.SCALINGS.get)
        pca = params.number_input(c7, "PCA components", key=f"{key}.pca", min_value=0,
                                  max_value=len(CLUSTERABLE), value=0, step=1, help="0: no PCA.")
        population = params.segmented_control(c8, "Traders", list(seg.POPULATIONS), key=f"{key}.population",
                                              default="traded", required=True,
                                              format_func={"traded": "Traded", "funded": "Funded",
                                                           "all": "All registered"}.get,
                                              help="Who is clustered: traders who opened a position (default), "
                                                   "who deposited, or everyone registered.")
        run_ids = [None, *runs["run_id"].astype(int).tolist()]
        previous = params.selectbox(
            st, "Keep the cluster numbers of", run_ids, key=f"{key}.previous",
            index=1 if len(run_ids) > 1 else 0, format_func=lambda r: _run_label(runs, r),
            help="Clusters that match a saved run's (by shared members) keep its numbers and names, so a segment "
                 "built on “cluster 3” keeps its meaning; a cluster that matches none gets a new number.")
    spec = seg.ClusterSpec(features=tuple(chosen), log1p=bool(log1p), scaling=scaling,
                           pca_components=int(pca) or None, algorithm=algorithm, k=int(k), seed=int(seed),
                           min_cluster_size=int(min_size) or None, population=population)
    return spec, previous


# --- the clusters ----------------------------------------------------------------------------------------


def _fingerprint(as_of: datetime, settings: str, previous: int | None) -> str:
    return hashlib.sha1(f"{as_of.isoformat()}|{settings}|{previous}".encode()).hexdigest()[:12]


def _colours(clusters: pd.DataFrame) -> dict[int, str]:
    ids = [int(c) for c in clusters["cluster"] if c != seg.NOISE]
    return {**{c: PALETTE[i % len(PALETTE)] for i, c in enumerate(ids)}, seg.NOISE: NOISE_GREY}


def _label(cluster: int, name: str) -> str:
    return name if cluster == seg.NOISE else f"{cluster} · {name}"


def render_cluster_table(clustering: seg.Clustering, *, key: str) -> dict[int, str]:
    """The clusters with their names editable; returns {cluster: name} as edited."""
    shown = pd.DataFrame({
        "Cluster": clustering.clusters["cluster"].astype(int),
        "Name": clustering.clusters["name"],
        "Traders": clustering.clusters["size"].astype(int),
        "Share": clustering.clusters["share"] * 100,
        "Most distinctive": [seg.describe_top(t) for t in clustering.clusters["top_features"]],
        "Continues": clustering.clusters["previous"].astype("Int64"),
    })
    if shown["Continues"].isna().all():
        shown = shown.drop(columns=["Continues"])
    edited = st.data_editor(
        shown, key=key, hide_index=True, width="stretch", height=fit_height(len(shown), max_rows=20),
        disabled=[c for c in shown.columns if c != "Name"],
        column_config={
            "Name": st.column_config.TextColumn(max_chars=80, required=True,
                                                help="Edit to rename; saved with the clustering."),
            "Share": st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100),
            "Traders": st.column_config.NumberColumn(format="localized"),
            "Most distinctive": st.column_config.TextColumn(
                help="The features furthest from the population, in population standard deviations (σ), "
                     "after the log transform."),
            "Continues": st.column_config.NumberColumn(help="The saved run's cluster this one continues."),
        })
    return {int(c): str(n).strip() or clustering.names()[int(c)]
            for c, n in zip(edited["Cluster"], edited["Name"], strict=True)}


def render_profile_table(clustering: seg.Clustering, names: dict[int, str], *, key: str) -> None:
    """Every cluster's feature means against the population, with a CSV download."""
    p = clustering.profiles
    named = p["cluster"].map(lambda c: names.get(int(c), ""))
    shown = pd.DataFrame({"Cluster": p["cluster"].astype(int), "Name": named,
                          "Feature": p["label"], "Unit": p["unit"], "Cluster mean": p["mean"],
                          "All clustered traders": p["population_mean"], "z": p["z"]})
    download = p.assign(name=named)[
        ["cluster", "name", "feature", "unit", "mean", "population_mean", "z"]]
    render_table(shown, key=key, file_name=f"cluster_profiles_{clustering.as_of:%Y-%m-%d}.csv", download=download,
                 height=fit_height(len(shown), max_rows=12), column_config={
                     "Cluster mean": st.column_config.NumberColumn(format="%.3g"),
                     "All clustered traders": st.column_config.NumberColumn(format="%.3g"),
                     "z": st.column_config.NumberColumn(format="%+.2f")})


def profile_heatmap(profiles: pd.DataFrame, names: dict[int, str]) -> alt.LayerChart:
    """z-score of each feature (columns) in each cluster (rows), red above the population, blue below."""
    data = profiles.assign(cluster_label=[_label(int(c), names.get(int(c), "")) for c in profiles["cluster"]],
                           z_shown=profiles["z"].clip(-3, 3), z_text=profiles["z"].map(lambda v: f"{v:+.1f}"))
    order = [_label(int(c), names.get(int(c), "")) for c in dict.fromkeys(profiles["cluster"])]
    base = alt.Chart(data).encode(
        x=alt.X("label:N", title=None, sort=None, axis=alt.Axis(labelAngle=-35, labelLimit=180)),
        y=alt.Y("cluster_label:N", title=None, sort=order, axis=alt.Axis(labelLimit=320)))
    cells = base.mark_rect().encode(
        color=alt.Color("z_shown:Q", title="z", scale=alt.Scale(scheme="redblue", domain=[3, -3]),
                        legend=alt.Legend(orient="right")),
        tooltip=[alt.Tooltip("cluster_label:N", title="Cluster"), alt.Tooltip("label:N", title="Feature"),
                 alt.Tooltip("mean:Q", title="Cluster mean", format=",.3~f"),
                 alt.Tooltip("population_mean:Q", title="Population mean", format=",.3~f"),
                 alt.Tooltip("unit:N", title="Unit"), alt.Tooltip("z:Q", title="z", format="+.2f")])
    text = base.mark_text(fontSize=10).encode(text="z_text:N")
    height = 34 * len(order) + 40
    return styled(alt.layer(cells, text), height=height)


def diagnostics_chart(diagnostics: seg.Diagnostics, chosen_k: int) -> alt.FacetChart:
    """One small panel per measure across k (HDBSCAN: across minimum cluster sizes), the chosen k marked."""
    measures = [m for m in DIAGNOSTIC_MEASURES if diagnostics.frame[m].notna().any()
                and not (m == "noise_share" and diagnostics.algorithm != "hdbscan")]
    x_field = "min_cluster_size" if diagnostics.algorithm == "hdbscan" else "k"
    long = diagnostics.frame.melt(id_vars=["k", "min_cluster_size"], value_vars=measures, var_name="measure")
    long["title"] = long["measure"].map(lambda m: f"{DIAGNOSTIC_MEASURES[m][0]} ({DIAGNOSTIC_MEASURES[m][1]})")
    long["chosen"] = long["k"] == chosen_k if x_field == "k" else False
    x_title = "Min cluster size" if x_field != "k" else "k"
    line = alt.Chart().mark_line(point=True).encode(
        x=alt.X(f"{x_field}:Q", title=x_title, axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip(f"{x_field}:Q", title=x_title), alt.Tooltip("k:Q", title="Clusters"),
                 alt.Tooltip("value:Q", title="Value", format=",.3f")])
    mark = alt.Chart().mark_point(size=160, filled=True, color="#d62728").encode(
        x=f"{x_field}:Q", y="value:Q").transform_filter(alt.datum.chosen)
    chart = alt.layer(line, mark, data=long).properties(width=230, height=150).facet(
        facet=alt.Facet("title:N", title=None, sort=list(dict.fromkeys(long["title"])),
                        header=alt.Header(labelFontSize=12)), columns=3
    ).resolve_scale(y="independent")
    return chart.configure_view(stroke=None)


def projection_chart(projection: seg.Projection, names: dict[int, str], colours: dict[int, str]) -> alt.Chart:
    """The sampled traders on the two main components, coloured by cluster (Vega-Lite on a canvas: a few
    thousand points redraw in a fraction of the time Plotly's WebGL map took here, and without its
    4.7 MB bundle; components/figures.py)."""
    frame = projection.frame
    order = [c for c in dict.fromkeys(colours) if c in set(frame["cluster"].tolist())]
    labels = {c: _label(c, names.get(c, "")) for c in order}
    data = frame.assign(label=frame["cluster"].map(labels))
    ex, ey = projection.explained
    chart = alt.Chart(data).mark_circle(size=16, opacity=0.6).encode(
        x=alt.X("x:Q", title=f"Component 1 ({ex:.0%} of the variance)", axis=alt.Axis(grid=True)),
        y=alt.Y("y:Q", title=f"Component 2 ({ey:.0%} of the variance)", axis=alt.Axis(grid=True)),
        color=alt.Color("label:N", title=None, scale=alt.Scale(domain=[labels[c] for c in order],
                                                                range=[colours[c] for c in order]),
                        legend=alt.Legend(orient="right", labelLimit=320)),
        tooltip=[alt.Tooltip("trader_id:Q", title="Trader id", format="d"), alt.Tooltip("label:N", title="Cluster")])
    return styled(chart, height=460)


def kyc_chart(comparison: seg.KycComparison) -> alt.LayerChart:
    """Cross-validated accuracy per group of fields, with the majority-class baseline as a tick."""
    data = comparison.frame.assign(low=(comparison.frame["accuracy"] - comparison.frame["accuracy_std"]).clip(0),
                                   high=(comparison.frame["accuracy"] + comparison.frame["accuracy_std"]).clip(0, 1))
    y = alt.Y("group:N", title=None, sort=None)
    bars = alt.Chart(data).mark_bar(height=26, color="#1f5fa8").encode(
        x=alt.X("accuracy:Q", title="Accuracy of predicting the cluster", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")), y=y,
        tooltip=[alt.Tooltip("group:N", title="Fields"), alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("accuracy_std:Q", title="± (std over folds)", format=".1%"),
                 alt.Tooltip("baseline:Q", title="Largest cluster only", format=".1%"),
                 alt.Tooltip("fields:N", title="Using")])
    errors = alt.Chart(data).mark_rule(color="#14243a").encode(x="low:Q", x2="high:Q", y=y)
    baseline = alt.Chart(data).mark_tick(color="#d62728", thickness=3, size=34).encode(
        x="baseline:Q", y=y, tooltip=[alt.Tooltip("baseline:Q", title="Baseline", format=".1%")])
    return styled(alt.layer(bars, errors, baseline), height=110)


# --- writes (button callbacks, before the next run) ---------------------------------------------------------

FLASH = "cluster_studio.flash"


def _flash(kind: str, message: Any) -> None:
    st.session_state[FLASH] = (kind, message)


def _saved_runs(key: str) -> dict[str, int]:
    return st.session_state.setdefault(f"{key}.saved", {})


def _computed_diagnostics(key: str, clustering: seg.Clustering) -> seg.Diagnostics | None:
    """The diagnostics of this clustering's setting when the user has computed them (from the cache)."""
    spec = clustering.spec
    if st.session_state.get(f"{key}.diagnostics") != _diagnostics_token(spec):
        return None
    return load_diagnostics(clustering.as_of, settings_without_k(spec), _k_values(spec))


def _save(clustering: seg.Clustering, names: dict[int, str], name: str, fingerprint: str, key: str) -> int:
    run_id = seg.save_clustering(runtime.get_writer_engine(), clustering.with_names(names), name=name,
                                 diagnostics=_computed_diagnostics(key, clustering))
    _saved_runs(key)[fingerprint] = run_id
    load_runs.clear()
    return run_id


def save_clustering(clustering: seg.Clustering, names: dict[int, str], fingerprint: str, key: str) -> None:
    """Save the clustering as a run (the form's name), with its edited names and diagnostics if computed."""
    try:
        run_id = _save(clustering, names, st.session_state.get(f"{key}.run_name", ""), fingerprint, key)
    except TraderLensError as exc:
        _flash("error", exc)
        return
    _flash("success", f"Saved clustering run #{run_id} ({len(clustering.labels):,} traders). New segments can "
                      "use its clusters; later refits keep its numbers.")


def save_names(run_id: int, names: dict[int, str]) -> None:
    """Save edited names on the saved run."""
    try:
        seg.rename_clusters(runtime.get_writer_engine(), run_id, names)
    except TraderLensError as exc:
        _flash("error", exc)
        return
    load_runs.clear()
    _flash("success", f"Saved the cluster names of run #{run_id}.")


def save_segment(clustering: seg.Clustering, names: dict[int, str], fingerprint: str, key: str) -> None:
    """Make the chosen cluster a saved segment (saving the clustering first when it is not saved yet),
    through the Segments page's writes (their checks, message and caches)."""
    state = st.session_state
    cluster = state.get(f"{key}.segment_cluster")
    if cluster is None:
        _flash("error", seg.ClusteringRejected("Choose the cluster to save as a segment."))
        return
    run_id = _saved_runs(key).get(fingerprint)
    if run_id is None:
        try:
            run_id = _save(clustering, names, _default_run_name(clustering), fingerprint, key)
        except TraderLensError as exc:
            _flash("error", exc)
            return
    name = state.get(f"{key}.segment_name", "") or names.get(int(cluster), "")
    segment_actions.save_new("cluster", name, {"run_id": int(run_id), "cluster": int(cluster)},
                             f"Cluster {int(cluster)} of clustering run #{run_id}")


def _default_run_name(clustering: seg.Clustering) -> str:
    return f"{clustering.spec.describe()}, as of {clustering.as_of:%d %b %Y}"[:120]


# --- the studio -----------------------------------------------------------------------------------------------


def _request(state_key: str, token: str) -> None:
    st.session_state[state_key] = token


def _on_demand(key: str, what: str, token: str, label: str, help_text: str) -> bool:
    """A button that, once clicked, keeps ``what`` shown while ``token`` (the settings it depends on) stays.
    (A callback, not the button's return value: a rerun before the button is reached would lose the click.)"""
    state_key = f"{key}.{what}"
    if st.session_state.get(state_key) == token:
        return True
    st.button(label, key=f"{state_key}.run", help=help_text, icon=":material/play_arrow:", on_click=_request,
              args=(state_key, token))
    return False


def _diagnostics_token(spec: seg.ClusterSpec) -> str:
    return json.dumps({**spec.settings(), "k": None}, sort_keys=True)  # diagnostics span k themselves


# The on-demand sections are fragments: their button reruns the section alone, not the whole studio
# (whose redraw in the browser, the map above all, costs about half a second).
@st.fragment
def render_diagnostics(key: str, as_of: datetime, spec: seg.ClusterSpec) -> None:
    """The diagnostics across k for ``spec``'s setting, once asked for."""
    if not _on_demand(key, "diagnostics", _diagnostics_token(spec), "Compute the diagnostics across k",
                      "Fits every k again on bootstrap samples: a second or two."):
        return
    diagnostics = load_diagnostics(as_of, settings_without_k(spec), _k_values(spec))
    st.altair_chart(diagnostics_chart(diagnostics, spec.k), key=f"{key}.diagnostics.chart")
    suggested = diagnostics.suggested_k()
    st.caption(
        f"Silhouette on a sample of {diagnostics.silhouette_rows:,} traders; the other measures on "
        f"{diagnostics.sample_rows:,} of the {diagnostics.population_rows:,} traders. Stability: the mean "
        f"adjusted Rand index between {diagnostics.bootstraps} refits on bootstrap samples"
        + (" (80% sub-samples for HDBSCAN)" if spec.algorithm == "hdbscan" else "")
        + ", each labelling the same traders (1: identical clusters every time). "
        + (f"Suggested: k = {suggested}, where silhouette, Calinski-Harabasz and Davies-Bouldin agree best among "
           "the settings with a stability of 0.8 or more."
           if suggested and spec.algorithm != "hdbscan" else ""))


@st.fragment
def render_kyc(key: str, as_of: datetime, settings: str, previous: int | None) -> None:
    """How well KYC fields and behaviour predict the clusters, once asked for."""
    if not _on_demand(key, "kyc", settings + str(previous), "Compare KYC with behaviour",
                      "Cross-validates two classifiers of the cluster: a second or two."):
        return
    try:
        comparison = load_kyc(as_of, settings, previous)
    except seg.ClusteringRejected as exc:
        st.info(escape_markdown(exc), icon=":material/info:")
        return
    render_chart(kyc_chart(comparison), key=f"{key}.kyc.chart")
    table = comparison.frame.set_index("group")
    kyc_row, behaviour_row = table.loc["KYC & demographics"], table.loc["Behaviour"]
    st.caption(
        f"How often a logistic regression predicts a trader's cluster in {comparison.folds}-fold cross-validation "
        f"on {comparison.rows:,} traders: from KYC and demographic fields {kyc_row['accuracy']:.0%}, from "
        f"behaviour {behaviour_row['accuracy']:.0%}, against {kyc_row['baseline']:.0%} by always guessing the "
        "largest cluster (the red tick). KYC fields: " + escape_markdown(kyc_row["fields"]) + ".")
    associations = comparison.associations.rename(columns={"label": "Field", "cramers_v": "Cramér's V",
                                                           "categories": "Values"})[["Field", "Cramér's V", "Values"]]
    # Keyed containers: a read-only st.dataframe does not keep its key (tests and browsers need a handle).
    with st.container(key=f"{key}.kyc.fields"):
        st.dataframe(associations, hide_index=True, height=fit_height(len(associations)), column_config={
            "Cramér's V": st.column_config.ProgressColumn(
                format="%.2f", min_value=0, max_value=1,
                help="Association of the field with the cluster: 0 none, 1 the field decides it.")})


@st.fragment
def render_saving(key: str, clustering: seg.Clustering, names: dict[int, str], fingerprint: str) -> None:
    """Save the clustering (then its names) and save a cluster as a segment. A fragment: a save reruns this
    box with its message, not the whole studio."""
    segment_actions.render_flash(FLASH)
    segment_actions.render_flash()  # a cluster saved as a segment: the Segments page's message, here at once
    saved_run = _saved_runs(key).get(fingerprint)
    with st.container(border=True):
        s1, s2 = st.columns(2)
        if saved_run is None:
            with s1.form(f"{key}.save_form", border=False):
                st.text_input("Save this clustering as", value=_default_run_name(clustering), max_chars=120,
                              key=f"{key}.run_name")
                st.form_submit_button("Save clustering", icon=":material/save:", type="primary",
                                      key=f"{key}.save", on_click=save_clustering,
                                      args=(clustering, names, fingerprint, key))
        else:
            s1.markdown(f"Saved as clustering run **#{saved_run}**.")
            s1.button("Save the names", key=f"{key}.save_names", on_click=save_names, args=(saved_run, names),
                      icon=":material/edit:", help="Store the names as edited above on the saved run.")
        with s2.form(f"{key}.segment_form", border=False):
            options = [int(c) for c in clustering.clusters["cluster"] if c != seg.NOISE]
            st.selectbox("Save a cluster as a segment", options, key=f"{key}.segment_cluster",
                         format_func=lambda c: _label(c, names.get(c, "")))
            st.text_input("Segment name (default: the cluster's name)", max_chars=120, key=f"{key}.segment_name")
            st.form_submit_button("Save cluster as segment", icon=":material/group_add:",
                                  key=f"{key}.save_segment", on_click=save_segment,
                                  args=(clustering, names, fingerprint, key),
                                  help="A live segment of this cluster's traders; new traders join it as they "
                                       "are assigned. Saves this clustering first if it is not saved yet.")


def render(*, key: str = "segments.studio") -> None:
    """The whole studio; every widget key starts with ``key``."""
    runs = load_runs()
    spec, previous = render_controls(key, runs)
    try:
        spec.check()
    except seg.ClusteringRejected as exc:
        st.warning(escape_markdown(exc), icon=":material/tune:")
        return
    try:
        as_of = load_as_of()
    except TraderLensError as exc:
        render_error(exc)
        return
    settings = json.dumps(spec.settings(), sort_keys=True)
    try:
        clustering = load_clustering(as_of, settings, previous)
    except seg.ClusteringRejected as exc:
        st.warning(escape_markdown(exc), icon=":material/group_off:")
        return
    fingerprint = _fingerprint(as_of, settings, previous)

    st.caption(f"{escape_markdown(spec.describe())}. Features as of {as_of:%d %b %Y} (data up to the day before). "
               f"{escape_markdown(clustering.population.describe())}")
    m1, m2, m3, m4 = st.columns(4)
    found = int((clustering.clusters["cluster"] != seg.NOISE).sum())
    m1.metric("Traders clustered", f"{len(clustering.labels):,}")
    m2.metric("Clusters", found)
    m3.metric("Noise", f"{clustering.noise_share:.1%}" if spec.algorithm == "hdbscan" else "none",
              help="HDBSCAN leaves traders far from every dense group unclustered (cluster −1).")
    m4.metric("Fitted on", f"{clustering.fitted_rows:,}",
              help="k-means fits every trader; the mixture and HDBSCAN fit a random sample past "
                   f"{seg.FIT_SAMPLE_ROWS['hdbscan']:,}–{seg.FIT_SAMPLE_ROWS['gmm']:,} traders and assign the rest "
                   "as new traders are assigned.")

    st.subheader("Clusters", anchor=False, divider="gray")
    names = render_cluster_table(clustering, key=f"{key}.names.{fingerprint}")
    colours = _colours(clustering.clusters)
    render_saving(key, clustering, names, fingerprint)

    st.subheader("Profiles", anchor=False, divider="gray")
    render_chart(profile_heatmap(clustering.profiles, names), key=f"{key}.profiles")
    st.caption("Each cell: how far the cluster's mean lies from every clustered trader's, in standard deviations "
               "(z), after the log transform; red above, blue below. Hover for the means in their units.")
    with st.expander("Profiles as a table, and each trader's cluster", icon=":material/table:"):
        render_profile_table(clustering, names, key=f"{key}.profile_table")
        st.download_button(
            "Download each trader's cluster (CSV)", key=f"{key}.assignments",
            data=lambda: to_csv(seg.clustering_table(runtime.get_engine(), clustering.with_names(names))),
            file_name=f"clusters_{clustering.as_of:%Y-%m-%d}.csv", mime="text/csv", on_click="ignore",
            icon=":material/download:",
            help="trader_external_id, trader_id, cluster, cluster_name; built when clicked.")

    st.subheader("Choosing k", anchor=False, divider="gray")
    render_diagnostics(key, as_of, spec)

    st.subheader("Map", anchor=False, divider="gray")
    projection = load_projection(as_of, settings, previous)
    render_chart(projection_chart(projection, names, colours), key=f"{key}.map")
    st.caption((f"A random sample of {projection.shown:,} of the {projection.total:,} traders (every cluster kept), "
                if projection.sampled else f"All {projection.total:,} traders, ")
               + "on the two main components (PCA) of the space the clusters were found in.")

    st.subheader("KYC and demographics against behaviour", anchor=False, divider="gray")
    render_kyc(key, as_of, settings, previous)

    with st.expander("How missing values are filled", icon=":material/help:"):
        notes = seg.fill_notes(spec.features)
        with st.container(key=f"{key}.fills"):
            st.dataframe(notes[["label", "note"]].rename(columns={"label": "Feature", "note": "When missing"}),
                         hide_index=True, height=fit_height(len(notes)))


def settings_without_k(spec: seg.ClusterSpec) -> str:
    """The spec's settings for diagnostics, which span k themselves."""
    return json.dumps({**spec.settings(), "k": seg.MIN_K}, sort_keys=True)


def _k_values(spec: seg.ClusterSpec) -> tuple[int, ...]:
    return tuple(range(seg.MIN_K, max(seg.DEFAULT_K_RANGE[-1], spec.k) + 1))
