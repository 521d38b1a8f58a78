"""Scores as fields of segment rules: ``score.<model>``, ``score.<model>_band``, ``score.<model>_decile``.

For every model with stored scores (``model_scores`` rows, the latest scoring of its active run) the
catalog offers three fields:

- ``score.<model>``: the calibrated probability, a number from 0 to 1 (0.3 is 30%);
- ``score.<model>_band``: its band (:data:`analytics.models.specs.BANDS`: fixed cut-offs, the same
  for every model), a choice, so a value that is not a band name is refused;
- ``score.<model>_decile``: 1 to 10 within the scored population, 1 for the highest 10%.

A trader outside a model's population (a churn score for someone who has not traded for a month)
has no score, so their value is empty: ``<``, ``>`` and ``between`` never match them, ``is not`` and
``is none of`` keep them, ``is empty`` finds them (the catalog's documented semantics). The values
are the stored ones: a rule follows the latest scoring, and a saved segment's refresh picks up a new
one. Everything compiles to SQL with bound parameters, like the other sources.

Importing this module registers the source (:func:`analytics.segments.register_field_source`);
:func:`analytics.segments.read_catalog` imports it, so every catalog (the pages, ``cli.py segments
refresh``, the background scheduler) has the score fields.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.models.specs import BAND_LABELS, BAND_NAMES, BANDS, MODELS, ModelSpec
from analytics.periods import local_date
from analytics.segments import Field, Relation, RuleContext, register_field_source
from connectors.schema import model_runs, model_scores, score_runs

NAMESPACE = "score"
GROUP = "Scores"
KINDS = ("", "_band", "_decile")  # score.<model><kind>


def field_names(model: str) -> tuple[str, str, str]:
    """(probability, band, decile) field names of ``model``."""
    return tuple(f"{NAMESPACE}.{model}{kind}" for kind in KINDS)  # type: ignore[return-value]


def _split(name: str) -> tuple[str, str]:
    """(model, kind) of a score field name: ("churn", "_band") for score.churn_band."""
    rest = name.removeprefix(f"{NAMESPACE}.")
    for kind in KINDS[1:]:
        if rest.endswith(kind) and rest.removesuffix(kind) in MODELS:
            return rest.removesuffix(kind), kind
    if rest in MODELS:
        return rest, ""
    raise KeyError(f"not a score field: {name!r}")


def _scored(conn: Connection) -> list[tuple[str, object, int | None]]:
    """(model, as of, run version) of the latest scoring of each model that has stored scores, in
    MODELS order. Three index probes and a read of the small score_runs table: catalogs are read
    on every rule preview."""
    s, r, ms = score_runs.c, model_runs.c, model_scores.c
    latest = sa.select(s.model, sa.func.max(s.score_run_id).label("score_run_id")).group_by(s.model).subquery()
    stored = sa.exists().where(ms.model == s.model)
    rows = conn.execute(
        sa.select(s.model, s.as_of, r.version)
        .select_from(score_runs.join(latest, latest.c.score_run_id == s.score_run_id)
                     .outerjoin(model_runs, r.run_id == s.run_id))
        .where(s.model.in_(list(MODELS)), stored)).all()
    found = {row.model: (row.model, row.as_of, row.version) for row in rows}
    return [found[m] for m in MODELS if m in found]


def _outcome(spec: ModelSpec) -> str:
    """The outcome as the rest of a sentence: "no trade opened or closed, ... within 30 days"."""
    return spec.question[0].lower() + spec.question[1:]


def score_fields(spec: ModelSpec, as_of, version: int | None) -> tuple[Field, Field, Field]:
    """The three fields of ``spec``'s stored scores (scored as of ``as_of`` by run ``version``)."""
    by = f"the {spec.name} model" + (f" v{version}" if version is not None else "")
    # as_of is the local midnight the scoring used data before: its day in the reporting zone.
    when = f"{local_date(as_of):%d %b %Y}" if as_of is not None else "its latest scoring"
    empty = (f"{spec.population} Traders outside this population have no score (an empty value): "
             "<, >, ≤, ≥ and between never match them, 'is not' keeps them and 'is empty' finds them.")
    scored = f"Scored by {by} as of {when}; follows the latest scoring."
    probability, band, decile = field_names(spec.name)
    cuts = ", ".join(f"{BAND_LABELS[b]}" for b, _, _ in BANDS)
    return (
        Field(probability, f"{spec.title} probability ({spec.horizon_days} days)", GROUP, "number",
              unit="probability from 0 to 1: 0.3 is 30%", bounds=(0.0, 1.0),
              description=f"The calibrated probability of this outcome: {_outcome(spec)}. Of the traders "
                          f"scored 0.3, about 30% have it. {scored} {empty}"),
        Field(band, f"{spec.title} score band", GROUP, "choice", BAND_NAMES,
              tuple(BAND_LABELS[b] for b in BAND_NAMES),
              description=f"The band of the {spec.name} probability ({_outcome(spec)}): {cuts}. The same "
                          f"cut-offs for every model. {scored} {empty}"),
        Field(decile, f"{spec.title} score decile", GROUP, "number", unit="1 to 10, 1 = the highest 10%",
              bounds=(1.0, 10.0),
              description=f"The trader's decile of the {spec.name} probability ({_outcome(spec)}) among the "
                          f"traders scored: 1 for the highest 10%, 10 for the lowest. {scored} {empty}"),
    )


class ScoreSource:
    """``score.<model>``, ``score.<model>_band``, ``score.<model>_decile`` of the stored scores."""

    namespace = NAMESPACE

    def __init__(self) -> None:
        # One subquery per model, so conditions on a model's three fields share one join.
        self._scores: dict[str, sa.Subquery] = {}

    def fields(self, conn: Connection) -> tuple[Field, ...]:
        out: list[Field] = []
        for model, as_of, version in _scored(conn):
            out += score_fields(MODELS[model], as_of, version)
        return tuple(out)

    def _source(self, model: str) -> sa.Subquery:
        if model not in self._scores:
            ms = model_scores.c
            # At most one row per trader (model_scores' key is model, trader_id): LEFT JOINed.
            self._scores[model] = (sa.select(ms.trader_id, ms.probability, ms.band, ms.decile)
                                   .where(ms.model == model).subquery(f"scores_{model}"))
        return self._scores[model]

    def relation(self, name: str, context: RuleContext) -> Relation:
        model, kind = _split(name)
        source = self._source(model)
        column = {"": source.c.probability, "_band": source.c.band, "_decile": source.c.decile}[kind]
        return Relation(source, column)


register_field_source(ScoreSource)
