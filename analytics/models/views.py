"""What the Predictions page reads: stored scores joined with the traders, filtered and counted in SQL.

Every figure comes from ``model_scores`` (one complete scoring per model, see :mod:`.scoring`); nothing
is scored or explained here. A :class:`ScoreFilter` is who the page looks at: the sidebar's
:class:`~analytics.filters.TraderFilter` (country, channel, segment, test accounts …), score bands and
a minimum of net deposits. The filter, the counts by band and the ordering run in one statement each;
only the rows shown (the highest probabilities first) come back to Python, where their stored reasons
are put in words (:func:`.reasons.reason_text`, with the medians of the run that scored them).

Net deposits are the trader's approved deposits minus approved withdrawals over all their history, as
Trader 360 shows them (bonuses, fees and adjustments are not money the client brought).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.filters import DEFAULT_FILTER, TraderFilter
from analytics.models.explain import Explanation
from analytics.models.reasons import reason_text
from analytics.models.specs import BAND_NAMES, model_spec
from analytics.reading import reading
from connectors.columnar import fetch_frame
from connectors.schema import model_runs, model_scores, traders, transactions

REASONS_SHOWN = 3
# Columns of :attr:`ScoreTable.rows` (then reason_1 … reason_k).
SCORE_COLUMNS = ["trader_id", "trader_external_id", "first_name", "last_name", "country", "vip_tier", "owner",
                 "probability", "band", "decile", "net_deposits_usd", "run_id"]


@dataclass(frozen=True)
class ScoreFilter:
    """Which stored scores of ``model`` to read: traders passing ``traders`` (the sidebar's filter),
    in any of ``bands`` (all when empty), with net deposits of at least ``min_net_deposits`` USD (no
    minimum when None). ``score_run_id`` pins the scoring read (the newest one when None): a page keys
    its cache by it, so a new scoring is never hidden behind an old cached table."""

    model: str
    score_run_id: int | None = None
    traders: TraderFilter = field(default=DEFAULT_FILTER)
    bands: tuple[str, ...] = ()
    min_net_deposits: float | None = None


@dataclass(frozen=True)
class ScoreTable:
    """``rows``: the highest-scored traders passing the filter (:data:`SCORE_COLUMNS`, then
    ``reason_1`` … in plain language), highest probability first; ``total``: how many pass it;
    ``bands``: of those, how many in each band (every band named, 0 included)."""

    rows: pd.DataFrame
    total: int
    bands: dict[str, int]


def _ledger(traders_of: sa.Select) -> sa.Subquery:
    """trader_id, net_deposits_usd (approved deposits − approved withdrawals, all history) of the
    traders ``traders_of`` selects."""
    x = transactions.c
    amount = sa.cast(x.amount_usd, sa.Double)
    net = sa.func.sum(sa.case((x.kind == "deposit", amount), else_=-amount))
    return (sa.select(x.trader_id, net.label("net_deposits_usd"))
            .where(x.status == "approved", x.kind.in_(("deposit", "withdrawal")), x.trader_id.in_(traders_of))
            .group_by(x.trader_id).subquery("ledger"))


def _filtered(flt: ScoreFilter) -> tuple[sa.FromClause, list[sa.ColumnElement[bool]]]:
    """(the model's scores joined with traders, and with the ledger when ``flt`` asks for a minimum of net
    deposits; the WHERE conditions of ``flt``). Without that minimum no ledger is read here: only the
    rows shown get their net deposits (:func:`score_table`)."""
    s, t = model_scores.c, traders.c
    where = [s.model == flt.model, *flt.traders.conditions()]
    if flt.score_run_id is not None:
        where.append(s.score_run_id == int(flt.score_run_id))
    if flt.bands:
        where.append(s.band.in_([b for b in flt.bands if b in BAND_NAMES]))
    source = model_scores.join(traders, t.trader_id == s.trader_id)
    if flt.min_net_deposits is not None:
        ledger = _ledger(sa.select(s.trader_id).where(s.model == flt.model))
        source = source.outerjoin(ledger, ledger.c.trader_id == s.trader_id)
        where.append(sa.func.coalesce(ledger.c.net_deposits_usd, 0.0) >= float(flt.min_net_deposits))
    return source, where


def _medians(conn: sa.Connection, run_ids: list[int]) -> dict[int, dict]:
    if not run_ids:
        return {}
    rows = conn.execute(sa.select(model_runs.c.run_id, model_runs.c.medians)
                        .where(model_runs.c.run_id.in_(run_ids))).all()
    return {int(r.run_id): json.loads(r.medians) for r in rows}


def reason_columns(model: str, explanations: pd.Series, run_ids: pd.Series, medians: dict[int, dict],
                   k: int = REASONS_SHOWN) -> pd.DataFrame:
    """``reason_1`` … ``reason_k``: each row's ``k`` largest stored contributions in plain language
    (empty when the trader has fewer), from the explanation JSON and the medians of the row's run."""
    spec = model_spec(model)
    out: list[list[str]] = []
    for text, run_id in zip(explanations, run_ids, strict=True):
        explanation = Explanation.from_json(json.loads(text))
        typical = medians.get(int(run_id), {})
        words = [reason_text(spec, r, typical) for r in explanation.reasons[:k]]
        out.append(words + [""] * (k - len(words)))
    return pd.DataFrame(out, columns=[f"reason_{i}" for i in range(1, k + 1)], index=explanations.index)


def score_table(engine: Engine, flt: ScoreFilter, *, limit: int | None = 200) -> ScoreTable:
    """The :class:`ScoreTable` of ``flt``: at most ``limit`` rows (None: every trader passing it).
    The filter, order and limit pick the traders first; their names, reasons and net deposits are
    then read for those rows only."""
    s, t = model_scores.c, traders.c
    source, where = _filtered(flt)
    picked = (sa.select(s.trader_id, s.probability).select_from(source).where(*where)
              .order_by(s.probability.desc(), s.trader_id))
    if limit is not None:
        picked = picked.limit(int(limit))
    picked = picked.subquery("picked")
    ledger = _ledger(sa.select(picked.c.trader_id))
    stmt = (sa.select(s.trader_id, t.external_id.label("trader_external_id"), t.first_name, t.last_name,
                      t.country, t.vip_tier, t.owner, s.probability, s.band, s.decile,
                      sa.func.coalesce(ledger.c.net_deposits_usd, 0.0).label("net_deposits_usd"), s.run_id,
                      s.explanation)
            .select_from(picked.join(model_scores, sa.and_(s.model == flt.model, s.trader_id == picked.c.trader_id))
                         .join(traders, t.trader_id == s.trader_id)
                         .outerjoin(ledger, ledger.c.trader_id == s.trader_id))
            .order_by(s.probability.desc(), s.trader_id))
    counted = sa.select(s.band, sa.func.count().label("traders")).select_from(source).where(*where).group_by(s.band)
    with reading(engine) as conn:
        rows = fetch_frame(conn, stmt)
        counts = {r.band: int(r.traders) for r in conn.execute(counted)}
        medians = _medians(conn, sorted({int(r) for r in rows["run_id"]}) if len(rows) else [])
    reasons = reason_columns(flt.model, rows["explanation"], rows["run_id"], medians)
    frame = pd.concat([rows[SCORE_COLUMNS].reset_index(drop=True), reasons.reset_index(drop=True)], axis=1)
    bands = {b: counts.get(b, 0) for b in BAND_NAMES}
    return ScoreTable(frame, sum(bands.values()), bands)


def score_external_ids(engine: Engine, flt: ScoreFilter) -> list[str]:
    """The external ids of every trader passing ``flt``, highest probability first (for a list segment)."""
    s, t = model_scores.c, traders.c
    source, where = _filtered(flt)
    stmt = (sa.select(t.external_id).select_from(source).where(*where)
            .order_by(s.probability.desc(), s.trader_id))
    with reading(engine) as conn:
        return [str(r[0]) for r in conn.execute(stmt)]


def band_field(engine: Engine, model: str) -> str | None:
    """The segment-rule field of ``model``'s score band (``score.<model>_band``, see
    :mod:`analytics.models.fields`) when the rule builder offers it with every band as a choice (it
    does once the model has stored scores), else None: a band is then saved as a list of traders."""
    from analytics.segments import load_catalog

    name = f"score.{model}_band"
    found = load_catalog(engine, suggestions=False).get(name)
    if found is None or not set(BAND_NAMES) <= set(found.choices):
        return None
    return name


def band_rule(field_name: str, bands: tuple[str, ...] | list[str]) -> dict:
    """A segment rule keeping the traders whose score band is one of ``bands``."""
    chosen = [b for b in BAND_NAMES if b in bands]
    return {"combine": "and", "items": [{"field": field_name, "op": "in", "value": chosen}]}


__all__ = ["REASONS_SHOWN", "SCORE_COLUMNS", "ScoreFilter", "ScoreTable", "band_field", "band_rule",
           "reason_columns", "score_external_ids", "score_table"]
