"""Saved, live trader segments: rules compiled to parameterised SQL, versioned definitions, and
membership refreshes that record every trader who entered or left.

**Rules.** A rule is a :class:`Group` of :class:`Condition`\\ s and nested groups combined with AND
or OR. A condition names a field of the :class:`FieldCatalog`, an operator of :data:`OPERATORS` and
a value. Fields come from sources (:class:`FieldSource`):

- ``trader.*``: the trader's record (country, channel, affiliate, VIP tier, KYC status, consents,
  owner, registration time, ...) and ``trader.platform`` (any of the trader's accounts);
- ``feature.*``: the materialised feature snapshot (:func:`analytics.features.feature_table`), whose
  as-of the catalog carries so screens can say it;
- ``lifecycle.stage``: the stage on the newest day with data (:func:`analytics.lifecycle.trader_stages`);
- ``cluster.<run_id>``: the trader's cluster in a saved clustering run (``cluster_assignments``);
- later sources (scores) through :func:`register_field_source`.

A rule is checked against the catalog (:func:`validate_rule`: known field, operator fit for its
type, value of the right type) and refused with :class:`RuleRejected` naming the condition and why.
It compiles to SQLAlchemy expressions whose every value is a bound parameter: nothing typed by a
user is spliced into SQL (field names are looked up in the catalog, never used as text).

Semantics worth knowing: ``!=`` and ``not in`` are the exact opposite of ``=`` and ``in``, so they
keep traders whose value is empty; ``<``, ``>``, ``between`` never match an empty value; a text is
empty when NULL or ``''``; a date value means that whole day of the reporting time zone (``<=
2026-03-31`` includes the 31st); the VIP tier of a trader without one is ``standard`` (as the
filters say); a platform condition asks about any of the trader's accounts (``!= MT4``: no MT4
account). Segments never hold test accounts.

**Saved segments** (tables ``segments``, ``segment_versions``, ``segment_members``,
``segment_changes``) have a kind: ``rules`` (a rule), ``cluster`` (clusters of a saved clustering
run), ``list`` (uploaded trader external ids) or ``funnel_step`` (the traders who dropped off after
a funnel step, :func:`analytics.funnels.compute_dropoffs`). Saving a changed definition adds a
version. :func:`refresh_segments` recomputes members and writes the difference, as ``entered`` /
``left`` rows in ``segment_changes`` and the new member set, in one transaction: an interrupted
refresh changes nothing and a repeated one adds nothing.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from analytics.events import read_event_span
from analytics.periods import DateRange, local_date, midnight, period_start
from analytics.reading import reading
from analytics.writing import writing
from connectors import database
from connectors.errors import TraderLensError
from connectors.schema import (
    KYC_STATUSES,
    PLATFORMS,
    SEGMENT_KINDS,
    accounts,
    cluster_assignments,
    clustering_runs,
    segment_changes,
    segment_members,
    segment_versions,
    segments,
    traders,
)

FieldType = Literal["text", "number", "bool", "time", "choice"]
Combine = Literal["and", "or"]
SegmentKind = Literal["rules", "cluster", "list", "funnel_step"]

OPERATORS: tuple[str, ...] = ("=", "!=", "in", "not in", "<", "<=", ">", ">=", "between", "is empty",
                              "is not empty")
OPERATOR_LABELS: dict[str, str] = {
    "=": "is", "!=": "is not", "in": "is one of", "not in": "is none of", "<": "<", "<=": "≤", ">": ">",
    ">=": "≥", "between": "between", "is empty": "is empty", "is not empty": "is not empty",
}
_ORDERED = ("<", "<=", ">", ">=", "between")
_EMPTY_OPS = ("is empty", "is not empty")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "text": ("=", "!=", "in", "not in", *_EMPTY_OPS),
    "choice": ("=", "!=", "in", "not in", *_EMPTY_OPS),
    "number": ("=", "!=", *_ORDERED, *_EMPTY_OPS),
    "time": ("=", "!=", *_ORDERED, *_EMPTY_OPS),
    "bool": ("=", "!="),
}
COMBINES: tuple[str, ...] = ("and", "or")

# Bounds that keep a rule a rule (not a data dump) and its SQL small.
MAX_DEPTH = 4  # nested groups below the top one
MAX_CONDITIONS = 100
MAX_VALUES = 10_000  # values of one "in" condition
MAX_TEXT = 500  # characters of one text value
MAX_NAME = 120  # segments.name
MAX_LIST_IDS = 500_000
SAMPLE_SIZE = 20

STANDARD_TIER = "standard"  # analytics.filters.STANDARD_TIER: the tier of a trader without one


class SegmentRejected(TraderLensError, ValueError):
    """A segment or rule that cannot be saved or computed; the message says why in plain words."""


class RuleRejected(SegmentRejected):
    """A rule refused by :func:`validate_rule`: ``path`` ("2.1": the first item of the second
    group) and ``reason`` say which condition and why."""

    def __init__(self, path: str, what: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Condition {path} ({what}): {reason}" if path else reason)


class SegmentNotFound(SegmentRejected):
    """No segment has this name or id."""


# ---------------------------------------------------------------------------------------------
# The rule model and its JSON form


@dataclass(frozen=True)
class Condition:
    """``field`` ``op`` ``value``: value is None for the empty tests, a list for in / not in, a
    two-item list [low, high] for between (both included), else one value. Dates are ISO strings
    ("2026-03-31") in JSON and :class:`datetime.date` after :func:`validate_rule`."""

    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Group:
    """Conditions and nested groups, all true (``and``) or any true (``or``). An empty top-level
    group keeps every trader."""

    combine: Combine = "and"
    items: tuple[Condition | Group, ...] = ()


Rule = Group


def rule_to_dict(rule: Group) -> dict:
    """The JSON-ready form: ``{"combine": "and", "items": [{"field", "op", "value"} | group, ...]}``
    (dates as ISO strings)."""

    def item(node: Condition | Group) -> dict:
        if isinstance(node, Group):
            return rule_to_dict(node)
        value = node.value
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, list | tuple):
            value = [v.isoformat() if isinstance(v, date) else v for v in value]
        out: dict = {"field": node.field, "op": node.op}
        if node.op not in _EMPTY_OPS:
            out["value"] = value
        return out

    return {"combine": rule.combine, "items": [item(node) for node in rule.items]}


def rule_to_json(rule: Group) -> str:
    """The rule as JSON text (keys sorted, so equal rules have equal text)."""
    return json.dumps(rule_to_dict(rule), sort_keys=True, ensure_ascii=False)


def rule_from_dict(data: Any, *, _path: str = "", _depth: int = 0) -> Group:
    """A :class:`Group` from its JSON-ready form; :class:`RuleRejected` for a malformed one (the
    values are checked by :func:`validate_rule`)."""
    if not isinstance(data, Mapping):
        raise RuleRejected(_path, "group", "a group must be an object with 'combine' and 'items'")
    combine = data.get("combine", "and")
    if combine not in COMBINES:
        raise RuleRejected(_path, "group", f"combine must be 'and' or 'or', not {_short(combine)}")
    items = data.get("items", [])
    if not isinstance(items, list | tuple):
        raise RuleRejected(_path, "group", "'items' must be a list")
    if _depth > MAX_DEPTH:
        raise RuleRejected(_path, "group", f"groups can be nested at most {MAX_DEPTH} deep")
    out: list[Condition | Group] = []
    for i, node in enumerate(items, start=1):
        path = f"{_path}.{i}" if _path else str(i)
        if isinstance(node, Mapping) and "items" in node:
            out.append(rule_from_dict(node, _path=path, _depth=_depth + 1))
        elif isinstance(node, Mapping):
            name, op = node.get("field"), node.get("op")
            if not isinstance(name, str) or not isinstance(op, str):
                raise RuleRejected(path, "condition", "a condition needs a 'field' and an 'op' (text)")
            out.append(Condition(name, op, node.get("value")))
        else:
            raise RuleRejected(path, "item", "each item is a condition or a group (an object)")
    return Group(combine, tuple(out))


def rule_from_json(text: str) -> Group:
    """:func:`rule_from_dict` of JSON text; :class:`RuleRejected` for text that is not JSON."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise RuleRejected("", "rule", f"the rule is not valid JSON ({exc})") from None
    return rule_from_dict(data)


def _short(value: Any) -> str:
    """A value as it can appear in a message: repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _conditions(rule: Group) -> Iterator[tuple[str, Condition]]:
    """(path, condition) of every condition of ``rule``, depth first."""
    def walk(group: Group, prefix: str) -> Iterator[tuple[str, Condition]]:
        for i, node in enumerate(group.items, start=1):
            path = f"{prefix}.{i}" if prefix else str(i)
            if isinstance(node, Group):
                yield from walk(node, path)
            else:
                yield path, node
    return walk(rule, "")


def rule_fields(rule: Group) -> tuple[str, ...]:
    """The field names a rule uses, in order of first use."""
    return tuple(dict.fromkeys(c.field for _, c in _conditions(rule)))


# ---------------------------------------------------------------------------------------------
# Fields and where their values come from


@dataclass(frozen=True)
class Field:
    """A field rules can test. ``choices`` are the only values a ``choice`` field takes (with
    ``choice_labels`` to show them); for a ``text`` field they are suggestions read from the data.
    ``multi``: a trader can have several values (a condition asks about any of them). ``bounds``:
    the (lowest, highest) value a number field can take, when it has them; a value outside is
    refused (a probability typed as 30 instead of 0.3 would silently select nobody)."""

    name: str
    label: str
    group: str
    type: FieldType
    choices: tuple = ()
    choice_labels: tuple[str, ...] = ()
    unit: str = ""
    description: str = ""
    multi: bool = False
    bounds: tuple[float, float] | None = None

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS_BY_TYPE[self.type]

    def choice_label(self, value: Any) -> str:
        if value in self.choices and self.choice_labels:
            return self.choice_labels[self.choices.index(value)]
        return str(value)


@dataclass(frozen=True)
class RuleContext:
    """What a rule is evaluated against: ``day`` (the newest day with data: the lifecycle stage's
    day; None for an empty database) and ``features_as_of`` (the materialised snapshot's as-of; None
    without one)."""

    day: date | None
    features_as_of: datetime | None


@dataclass(frozen=True)
class Relation:
    """Where a field's value is: ``column`` of ``source`` (a table or subquery with ``trader_id``;
    None for a column of traders itself). With ``join`` the source (at most one row per trader, keyed
    so a join is cheap) is LEFT JOINed to traders, and fields sharing a ``source`` object share the
    join; without it a condition becomes ``trader_id IN (SELECT trader_id FROM source WHERE ...)``,
    which the database computes once: for aggregates whose size it cannot estimate (PostgreSQL
    planned a join to the lifecycle stages as a nested loop recomputing them per trader)."""

    source: sa.FromClause | None
    column: ColumnElement
    join: bool = True


class FieldSource(Protocol):
    """A provider of rule fields (the extension point: issue 13's scores register one).

    ``fields(conn)`` lists the fields available now (names ``<namespace>.<name>``, unique across
    sources); ``relation(name, context)`` says where a field's value is. A single-valued field's
    source has at most one row per trader and is LEFT JOINed; a ``multi`` field's source is tested
    with EXISTS.
    """

    namespace: str

    def fields(self, conn: Connection) -> tuple[Field, ...]: ...

    def relation(self, name: str, context: RuleContext) -> Relation: ...


# Trader attributes: (column, label, type, description). Text columns with few values get
# suggestions from the data.
_TRADER_FIELDS: tuple[tuple[str, str, FieldType, str], ...] = (
    ("external_id", "Trader id", "text", "The trader's id in the broker's systems."),
    ("country", "Country", "text", "ISO country code."),
    ("language", "Language", "text", ""),
    ("timezone", "Time zone", "text", ""),
    ("acquisition_channel", "Acquisition channel", "text", ""),
    ("campaign_source", "Campaign source", "text", ""),
    ("affiliate_id", "Affiliate (IB)", "text", ""),
    ("vip_tier", "VIP tier", "text", f"'{STANDARD_TIER}' for a trader without a tier."),
    ("kyc_status", "KYC status", "text", "As the trader record holds it."),
    ("owner", "Owner", "text", "The account manager or retention agent."),
    ("email", "Email", "text", ""),
    ("phone", "Phone", "text", ""),
    ("is_blocked", "Blocked", "bool", ""),
    ("consent_email", "Consents to email", "bool", ""),
    ("consent_sms", "Consents to SMS", "bool", ""),
    ("consent_push", "Consents to push", "bool", ""),
    ("consent_whatsapp", "Consents to WhatsApp", "bool", ""),
    ("lead_at", "Lead captured", "time", "A day of the reporting time zone."),
    ("registered_at", "Registered", "time", "A day of the reporting time zone."),
    ("kyc_approved_at", "KYC approved", "time", "A day of the reporting time zone."),
)
_SUGGESTED = ("country", "language", "acquisition_channel", "campaign_source", "affiliate_id", "vip_tier",
              "kyc_status", "owner")
MAX_SUGGESTIONS = 500


class TraderSource:
    """``trader.<column>`` of the traders table, and ``trader.platform`` (any account's platform)."""

    namespace = "trader"

    def __init__(self, *, suggestions: bool = False) -> None:
        self.suggestions = suggestions

    def fields(self, conn: Connection) -> tuple[Field, ...]:
        out = []
        for column, label, kind, description in _TRADER_FIELDS:
            choices: tuple = ()
            if self.suggestions and column in _SUGGESTED:
                choices = self._distinct(conn, traders.c[column])
                if column == "vip_tier":
                    choices = (STANDARD_TIER, *choices)
                elif column == "kyc_status":
                    choices = tuple(dict.fromkeys(("none", *KYC_STATUSES, *choices)))
            out.append(Field(f"trader.{column}", label, "Trader", kind, choices, description=description))
        platforms = self._distinct(conn, accounts.c.platform) if self.suggestions else ()
        out.append(Field("trader.platform", "Platform", "Trader", "text",
                         tuple(dict.fromkeys((*PLATFORMS, *platforms))) if self.suggestions else (),
                         description="Any of the trader's accounts is on this platform.", multi=True))
        return tuple(out)

    @staticmethod
    def _distinct(conn: Connection, column: sa.Column) -> tuple:
        rows = conn.execute(sa.select(column).where(column.is_not(None), column != "").distinct()
                            .order_by(column).limit(MAX_SUGGESTIONS))
        return tuple(r[0] for r in rows)

    def relation(self, name: str, context: RuleContext) -> Relation:
        column = name.removeprefix("trader.")
        if column == "platform":
            return Relation(accounts, accounts.c.platform)
        if column == "vip_tier":
            return Relation(None, sa.func.coalesce(traders.c.vip_tier, STANDARD_TIER))
        return Relation(None, traders.c[column])


class FeatureSource:
    """``feature.<name>`` of the materialised snapshot (analytics.features): available once one
    has been materialised."""

    namespace = "feature"

    def __init__(self) -> None:
        from analytics.features import feature_table

        self.table = feature_table().alias("features")

    def fields(self, conn: Connection) -> tuple[Field, ...]:
        from analytics.features import FEATURES, KYC_STATE, KYC_STATES

        if _features_as_of(conn) is None:
            return ()
        out = [Field(f"feature.{f.name}", f.label, f"Features: {f.group.replace('_', ' ')}", "number",
                     unit=f.unit, description=f.description) for f in FEATURES]
        out.append(Field(f"feature.{KYC_STATE}", "KYC state", "Features: kyc", "choice", KYC_STATES,
                         description="The status of the last KYC event before the snapshot."))
        return tuple(out)

    def relation(self, name: str, context: RuleContext) -> Relation:
        return Relation(self.table, self.table.c[name.removeprefix("feature.")])


def _features_as_of(conn: Connection) -> datetime | None:
    """The as-of of the materialised feature snapshot; None when there is none."""
    from analytics.features import FEATURE_TABLE, feature_table

    if not sa.inspect(conn).has_table(FEATURE_TABLE):
        return None
    return conn.execute(sa.select(sa.func.max(feature_table().c.as_of))).scalar_one()


class LifecycleSource:
    """``lifecycle.stage``: the trader's stage at the end of the newest day with data."""

    namespace = "lifecycle"

    def fields(self, conn: Connection) -> tuple[Field, ...]:
        from analytics.lifecycle import STAGE_LABELS, STAGES

        return (Field("lifecycle.stage", "Lifecycle stage", "Lifecycle", "choice", STAGES,
                      tuple(STAGE_LABELS[s] for s in STAGES),
                      description="The stage at the end of the newest day with data (the Lifecycle page's "
                                  "rules and default thresholds)."),)

    def relation(self, name: str, context: RuleContext) -> Relation:
        from analytics.lifecycle import trader_stages

        if context.day is None:  # no data: nobody has a stage
            empty = sa.select(traders.c.trader_id, sa.cast(sa.null(), sa.String).label("stage")).where(sa.false())
            stages = empty.subquery("stages")
        else:
            stages = trader_stages(context.day).subquery("stages")
        return Relation(stages, stages.c.stage, join=False)


class ClusterSource:
    """``cluster.<run_id>``: the trader's cluster in a saved clustering run (choices: the run's
    clusters, labelled with their names)."""

    namespace = "cluster"

    def fields(self, conn: Connection) -> tuple[Field, ...]:
        runs = conn.execute(sa.select(clustering_runs.c.run_id, clustering_runs.c.name, clustering_runs.c.clusters,
                                      clustering_runs.c.created_at).order_by(clustering_runs.c.run_id.desc()))
        out = []
        for run_id, name, clusters, created_at in runs:
            ids, labels = _run_clusters(clusters)
            out.append(Field(f"cluster.{run_id}", f"Cluster in “{name}”", "Clusters", "choice", ids, labels,
                             description=f"Clustering run {run_id} of {created_at:%d %b %Y}."))
        return tuple(out)

    def relation(self, name: str, context: RuleContext) -> Relation:
        run_id = int(name.removeprefix("cluster."))
        ca = cluster_assignments
        assigned = (sa.select(ca.c.trader_id, ca.c.cluster).where(ca.c.run_id == run_id)
                    .subquery(f"clusters_{run_id}"))
        return Relation(assigned, assigned.c.cluster)


def _run_clusters(clusters_json: str | None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(cluster ids, "id · name" labels) of a run's ``clusters`` JSON."""
    try:
        listed = json.loads(clusters_json or "[]")
    except ValueError:
        listed = []
    pairs = sorted((int(c["cluster"]), str(c.get("name") or "")) for c in listed
                   if isinstance(c, Mapping) and isinstance(c.get("cluster"), int))
    return (tuple(p[0] for p in pairs),
            tuple(f"{cid} · {name}" if name else str(cid) for cid, name in pairs))


_SOURCES: list[Callable[[], FieldSource]] = []


def register_field_source(factory: Callable[[], FieldSource]) -> None:
    """Add a source of rule fields (called once at import by the module that provides it, e.g. scores)."""
    if factory not in _SOURCES:
        _SOURCES.append(factory)


@dataclass(frozen=True)
class FieldCatalog:
    """Every field rules can use now, and the context they are evaluated in."""

    fields: tuple[Field, ...]
    context: RuleContext
    sources: Mapping[str, FieldSource] = field(repr=False, compare=False, default_factory=dict)

    def get(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def relation(self, name: str) -> Relation:
        return self.sources[name.partition(".")[0]].relation(name, self.context)


def read_catalog(conn: Connection, *, suggestions: bool = False) -> FieldCatalog:
    """The :class:`FieldCatalog` read on an open connection; ``suggestions`` reads the values text
    fields take in the data (for pickers)."""
    # The score fields register themselves on import; importing them here (not where a page or
    # command happens to) gives every catalog reader the same fields: the pages, `cli.py segments
    # refresh` and the background scheduler. Lazily, as analytics.models.fields imports this module.
    import analytics.models.fields  # noqa: F401

    span = read_event_span(conn)
    context = RuleContext(day=local_date(span.last_at) if span else None, features_as_of=_features_as_of(conn))
    sources: list[FieldSource] = [TraderSource(suggestions=suggestions), FeatureSource(), LifecycleSource(),
                                  ClusterSource(), *(make() for make in _SOURCES)]
    fields_: list[Field] = []
    for source in sources:
        fields_ += source.fields(conn)
    return FieldCatalog(tuple(fields_), context, {s.namespace: s for s in sources})


def load_catalog(engine: Engine, *, suggestions: bool = True) -> FieldCatalog:
    """:func:`read_catalog` through the read door."""
    with reading(engine) as conn:
        return read_catalog(conn, suggestions=suggestions)


# ---------------------------------------------------------------------------------------------
# Validation


def _describe(condition: Condition, catalog: FieldCatalog | None) -> str:
    f = catalog.get(condition.field) if catalog else None
    label = f.label if f else _short(condition.field)
    return f"{label} {OPERATOR_LABELS.get(condition.op, _short(condition.op))}"


def _check_text(value: Any, path: str, what: str) -> str:
    if not isinstance(value, str):
        raise RuleRejected(path, what, f"expects text, not {_short(value)}")
    if not value.strip():
        raise RuleRejected(path, what, "the value is empty (to find empty values use 'is empty')")
    if len(value) > MAX_TEXT:
        raise RuleRejected(path, what, f"a value can have at most {MAX_TEXT} characters")
    if "\x00" in value:
        raise RuleRejected(path, what, "a value cannot contain a NUL character")
    return value


def _check_number(value: Any, path: str, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleRejected(path, what, f"expects a number, not {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleRejected(path, what, f"expects a finite number, not {value}")
    return value


def _check_day(value: Any, path: str, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RuleRejected(path, what, f"expects a date as YYYY-MM-DD, not {_short(value)}")


def _check_value(f: Field, value: Any, path: str, what: str) -> Any:
    if f.type == "number":
        number = _check_number(value, path, what)
        if f.bounds is not None and not f.bounds[0] <= number <= f.bounds[1]:
            low, high = f.bounds
            raise RuleRejected(path, what,
                               f"takes values from {low:g} to {high:g} ({f.unit or f.label}), not {number:g}")
        return number
    if f.type == "time":
        return _check_day(value, path, what)
    if f.type == "bool":
        if not isinstance(value, bool):
            raise RuleRejected(path, what, f"expects true or false, not {_short(value)}")
        return value
    if f.type == "choice":
        if value not in f.choices or isinstance(value, bool):
            listed = ", ".join(str(c) for c in f.choices[:20]) or "none"
            raise RuleRejected(path, what, f"{_short(value)} is not one of its values ({listed})")
        return value
    return _check_text(value, path, what)


def _scored_model(field_name: str) -> str | None:
    """The model a ``score.<model>[_band|_decile]`` field name is about, None for another name."""
    from analytics.models.specs import MODELS

    name = field_name.partition(".")[2]
    for suffix in ("_band", "_decile", ""):
        if name.endswith(suffix) and name[: len(name) - len(suffix)] in MODELS:
            return name[: len(name) - len(suffix)]
    return None


def validate_rule(rule: Group, catalog: FieldCatalog) -> Group:
    """The rule with its values normalised (dates as :class:`datetime.date`, lists as tuples), or
    :class:`RuleRejected` naming the first condition that cannot be used and why."""
    count = sum(1 for _ in _conditions(rule))
    if count > MAX_CONDITIONS:
        raise RuleRejected("", "rule", f"a rule can have at most {MAX_CONDITIONS} conditions (this one has {count})")

    def check(group: Group, prefix: str, depth: int) -> Group:
        if group.combine not in COMBINES:
            raise RuleRejected(prefix, "group", f"combine must be 'and' or 'or', not {_short(group.combine)}")
        if depth > MAX_DEPTH:
            raise RuleRejected(prefix, "group", f"groups can be nested at most {MAX_DEPTH} deep")
        if depth and not group.items:
            raise RuleRejected(prefix, "group", "the group is empty: add a condition or remove it")
        out: list[Condition | Group] = []
        for i, node in enumerate(group.items, start=1):
            path = f"{prefix}.{i}" if prefix else str(i)
            out.append(check(node, path, depth + 1) if isinstance(node, Group) else check_condition(node, path))
        return Group(group.combine, tuple(out))

    def check_condition(c: Condition, path: str) -> Condition:
        what = _describe(c, catalog)
        f = catalog.get(c.field) if isinstance(c.field, str) else None
        if f is None:
            namespace = c.field.partition(".")[0] if isinstance(c.field, str) else ""
            if namespace == "feature" and catalog.context.features_as_of is None:
                why = ("no feature snapshot has been computed yet (the features are materialised by "
                       "`python cli.py segments refresh` or the app's refresh)")
            elif namespace == "cluster":
                why = f"no saved clustering run {_short(c.field.partition('.')[2])}"
            elif namespace == "score" and (model := _scored_model(c.field)) is not None:
                why = (f"the {model} model has no stored scores yet (train and score it on the Predictions "
                       f"page, or `python cli.py score --model {model}`)")
            else:
                why = f"unknown field {_short(c.field)}"
            raise RuleRejected(path, what, why)
        if c.op not in OPERATORS:
            raise RuleRejected(path, what, f"unknown operator {_short(c.op)}; use one of {', '.join(OPERATORS)}")
        if c.op not in f.operators:
            raise RuleRejected(path, what, f"'{c.op}' does not apply to a {f.type} field; use one of "
                               f"{', '.join(f.operators)}")
        if f.multi and c.op in _ORDERED:
            raise RuleRejected(path, what, f"'{c.op}' does not apply to a field with several values per trader")
        value = c.value
        if c.op in _EMPTY_OPS:
            if value not in (None, "", [], ()):
                raise RuleRejected(path, what, f"'{c.op}' takes no value")
            return Condition(c.field, c.op, None)
        if c.op in ("in", "not in"):
            if not isinstance(value, list | tuple) or not value:
                raise RuleRejected(path, what, "expects a non-empty list of values")
            if len(value) > MAX_VALUES:
                raise RuleRejected(path, what, f"a list can have at most {MAX_VALUES:,} values")
            return Condition(c.field, c.op, tuple(dict.fromkeys(_check_value(f, v, path, what) for v in value)))
        if c.op == "between":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise RuleRejected(path, what, "expects two values: [low, high]")
            low, high = (_check_value(f, v, path, what) for v in value)
            if low > high:
                raise RuleRejected(path, what, f"the low end ({low}) is above the high end ({high})")
            return Condition(c.field, c.op, (low, high))
        return Condition(c.field, c.op, _check_value(f, value, path, what))

    return check(rule, "", 0)


# ---------------------------------------------------------------------------------------------
# Compilation


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants that start ``day`` and the day after (reporting time zone)."""
    return midnight(day), midnight(day + timedelta(days=1))


def _predicate(f: Field, op: str, value: Any, column: ColumnElement) -> ColumnElement[bool]:
    """``column op value`` with every value bound; the negative operators are the exact complement
    of the positive ones (NULL included)."""
    if op == "!=":
        return _predicate(f, "=", value, column).is_not(sa.true())
    if op == "not in":
        return _predicate(f, "in", value, column).is_not(sa.true())
    if op == "is not empty":
        return _predicate(f, "is empty", None, column).is_not(sa.true())
    if op == "is empty":
        return sa.or_(column.is_(None), column == "") if f.type == "text" else column.is_(None)
    if f.type == "time":
        if op == "between":
            return sa.and_(column >= midnight(value[0]), column < midnight(value[1] + timedelta(days=1)))
        start, end = _day_bounds(value)
        return {"=": lambda: sa.and_(column >= start, column < end), "<": lambda: column < start,
                "<=": lambda: column < end, ">": lambda: column >= end, ">=": lambda: column >= start}[op]()
    if op == "in":
        return column.in_(list(value))
    if op == "between":
        return column.between(value[0], value[1])
    return {"=": column.__eq__, "<": column.__lt__, "<=": column.__le__, ">": column.__gt__,
            ">=": column.__ge__}[op](value)


@dataclass
class _Compiler:
    catalog: FieldCatalog
    joins: dict[int, sa.FromClause] = field(default_factory=dict)
    columns: dict[str, ColumnElement] = field(default_factory=dict)

    def condition(self, c: Condition) -> ColumnElement[bool]:
        f = self.catalog.get(c.field)
        assert f is not None  # validated
        relation = self.catalog.relation(c.field)
        if not f.multi and (relation.source is None or relation.join):
            if relation.source is not None:
                self.joins.setdefault(id(relation.source), relation.source)
            self.columns.setdefault(c.field, relation.column)
            return _predicate(f, c.op, c.value, relation.column)
        # Tested on the source's rows: "any of them" for the positive operators and, for a field
        # with several values, its complement for the negative ones (no account on MT4 at all for
        # "!= MT4"); a trader without a row has an empty value.
        source = relation.source
        assert source is not None
        positive = {"!=": "=", "not in": "in", "is empty": "is not empty"}.get(c.op, c.op)
        if positive == "is not empty":
            test = _predicate(f, "is empty", None, relation.column).is_not(sa.true())
        else:
            test = _predicate(f, positive, c.value, relation.column)
        found = traders.c.trader_id.in_(sa.select(source.c.trader_id).where(test))
        return found if positive == c.op else ~found

    def group(self, g: Group) -> ColumnElement[bool]:
        parts = [self.group(n) if isinstance(n, Group) else self.condition(n) for n in g.items]
        if not parts:
            return sa.true()
        return sa.and_(*parts) if g.combine == "and" else sa.or_(*parts)

    def from_clause(self) -> sa.FromClause:
        joined: sa.FromClause = traders
        for source in self.joins.values():
            joined = joined.outerjoin(source, source.c.trader_id == traders.c.trader_id)
        return joined


def compile_rule(rule: Group, catalog: FieldCatalog
                 ) -> tuple[sa.FromClause, ColumnElement[bool], dict[str, ColumnElement]]:
    """(FROM clause: traders and the joins the rule needs, WHERE condition, the value column of each
    single-valued field used) of a validated rule. Test accounts are not excluded here."""
    compiler = _Compiler(catalog)
    where = compiler.group(rule)
    return compiler.from_clause(), where, compiler.columns


def rule_members(rule: Group, catalog: FieldCatalog) -> sa.Select:
    """SELECT trader_id of every trader (test accounts left out) matching ``rule`` (validated here)."""
    checked = validate_rule(rule, catalog)
    from_, where, _ = compile_rule(checked, catalog)
    return sa.select(traders.c.trader_id).select_from(from_).where(traders.c.is_test.is_(sa.false()), where)


@dataclass(frozen=True)
class RulePreview:
    """What an unsaved rule selects now: ``count`` of ``population`` (every trader but test
    accounts); ``sample``: up to SAMPLE_SIZE members, newest registrations first, columns
    trader_id, trader_external_id, name, country, vip_tier, registered_at, then one column per field
    the rule uses that is joined to traders (by its label; not the lifecycle stage, see
    :class:`Relation`); ``context``: the stage day and the feature snapshot's as-of."""

    count: int
    population: int
    sample: pd.DataFrame
    context: RuleContext
    seconds: float


# Rule fields the sample shows anyway (as trader_external_id, country, vip_tier, registered_at).
_SAMPLE_FIELDS = frozenset({"trader.external_id", "trader.country", "trader.vip_tier", "trader.registered_at"})


def preview_rule(engine: Engine, rule: Group | Mapping | str, *, sample_size: int = SAMPLE_SIZE) -> RulePreview:
    """Count and sample the traders an unsaved rule selects (one read). :class:`RuleRejected` for a
    rule that cannot be used."""
    started = time.perf_counter()
    with reading(engine) as conn:
        catalog = read_catalog(conn)
        checked = validate_rule(_as_rule(rule), catalog)
        from_, where, columns = compile_rule(checked, catalog)
        t = traders.c
        columns = {name: col for name, col in columns.items() if name not in _SAMPLE_FIELDS}
        values = [col.label(f"f{i}") for i, col in enumerate(columns.values())]
        # The members once (a CTE read twice, which PostgreSQL materialises): their count, and the
        # newest registrations among them as the sample. Sorting the rule's own query instead made
        # PostgreSQL walk every trader in date order with a lookup per trader.
        matched = (sa.select(t.trader_id.label("member_id"), *values).select_from(from_)
                   .where(t.is_test.is_(sa.false()), where).cte("matched"))
        count = sa.select(sa.func.count()).select_from(matched).scalar_subquery()
        query = (sa.select(t.trader_id, t.external_id, t.first_name, t.last_name, t.country,
                           sa.func.coalesce(t.vip_tier, STANDARD_TIER), t.registered_at,
                           *(matched.c[v.name] for v in values), count.label("members"))
                 .select_from(matched.join(traders, t.trader_id == matched.c.member_id))
                 .order_by(t.registered_at.desc().nulls_last(), t.trader_id.desc()).limit(sample_size))
        rows = conn.execute(query).all()
        population = conn.execute(sa.select(sa.func.count()).select_from(traders)
                                  .where(t.is_test.is_(sa.false()))).scalar_one()
    labels = [catalog.get(name).label for name in columns]  # type: ignore[union-attr]
    sample = pd.DataFrame([r[:-1] for r in rows], columns=[
        "trader_id", "trader_external_id", "first_name", "last_name", "country", "vip_tier", "registered_at",
        *[f"f{i}" for i in range(len(values))]])
    name = (sample.pop("first_name").fillna("") + " " + sample.pop("last_name").fillna("")).str.strip()
    sample.insert(2, "name", name)
    sample = sample.rename(columns={f"f{i}": label for i, label in enumerate(labels)})
    sample = sample.loc[:, ~sample.columns.duplicated()]
    count = int(rows[0][-1]) if rows else 0
    return RulePreview(count, int(population), sample, catalog.context, time.perf_counter() - started)


def _as_rule(rule: Group | Mapping | str) -> Group:
    if isinstance(rule, Group):
        return rule
    return rule_from_json(rule) if isinstance(rule, str) else rule_from_dict(rule)


def describe_rule(rule: Group, catalog: FieldCatalog | None = None) -> str:
    """The rule in words: "Country is one of DE, AT and (Trades per week > 5 or Lifecycle stage is Active)"."""

    def value_text(f: Field | None, value: Any) -> str:
        def one(v: Any) -> str:
            return f.choice_label(v) if f is not None else str(v)
        if isinstance(value, list | tuple):
            return ", ".join(one(v) for v in value)
        return one(value)

    def words(node: Condition | Group, top: bool) -> str:
        if isinstance(node, Group):
            inner = f" {node.combine} ".join(words(n, False) for n in node.items)
            return inner if top or len(node.items) < 2 else f"({inner})"
        f = catalog.get(node.field) if catalog else None
        label = f.label if f else node.field
        op = OPERATOR_LABELS.get(node.op, node.op)
        if node.op in _EMPTY_OPS:
            return f"{label} {op}"
        if node.op == "between" and isinstance(node.value, list | tuple) and len(node.value) == 2:
            return f"{label} between {value_text(f, node.value[0])} and {value_text(f, node.value[1])}"
        return f"{label} {op} {value_text(f, node.value)}"

    return words(rule, True) if rule.items else "Every trader"


# ---------------------------------------------------------------------------------------------
# Definitions of saved segments


def _json(definition: Mapping) -> str:
    return json.dumps(definition, sort_keys=True, ensure_ascii=False)


def funnel_step_definition(spec: Any, *, step: int, status: str | None = "dropped", days: int | None = 30,
                           date_range: DateRange | None = None) -> dict:
    """The ``funnel_step`` definition of the traders who reached ``step`` (1-based) of the funnel
    ``spec`` (:class:`analytics.funnels.FunnelSpec`) and not the next one: over the last ``days``
    days of data (kept live), or over a fixed ``date_range``; ``status`` "dropped", "in_window" or
    None for both (:class:`analytics.funnels.Dropoffs`)."""
    out: dict = {
        "steps": list(spec.steps), "window_s": int(spec.effective_window_s), "order": spec.order,
        "exclusions": [{"event": e.event, "from_step": e.from_step, "to_step": e.to_step} for e in spec.exclusions],
        "step_filters": [None if f is None else {"key": f.key, "value": f.value} for f in spec.step_filters],
        "step": int(step), "status": status,
    }
    if date_range is not None:
        out["start"], out["end"] = date_range.start.isoformat(), date_range.end.isoformat()
    else:
        out["days"] = int(days) if days else None
    return out


def _funnel_of(definition: Mapping) -> tuple[Any, int, str | None, int | None, DateRange | None]:
    """(FunnelSpec, step, status, days, fixed range) of a ``funnel_step`` definition; SegmentRejected
    for a malformed one."""
    from analytics.funnels import DROPOFF_STATUSES, Exclusion, FunnelRejected, FunnelSpec, StepFilter, validate_spec

    try:
        steps = definition["steps"]
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise SegmentRejected("A funnel step segment needs its funnel's steps: a list of event names.")
        spec = FunnelSpec(
            steps=tuple(steps), window_s=int(definition.get("window_s") or 0),
            order=definition.get("order", "ordered"),
            exclusions=tuple(Exclusion(str(e["event"]), int(e["from_step"]), int(e["to_step"]))
                             for e in definition.get("exclusions") or []),
            step_filters=tuple(None if f is None else StepFilter(str(f["key"]), str(f["value"]))
                               for f in definition.get("step_filters") or []))
        step = definition.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step < len(steps):
            raise SegmentRejected(f"The funnel step must be a number from 1 to {len(steps) - 1} (the drop-offs are "
                                  f"between a step and the next), not {_short(step)}.")
        status = definition.get("status")
        if status is not None and status not in DROPOFF_STATUSES:
            raise SegmentRejected(f"The drop-off status must be one of {', '.join(DROPOFF_STATUSES)} or empty "
                                  f"for both, not {_short(status)}.")
        days, fixed = definition.get("days"), None
        if "start" in definition or "end" in definition:
            fixed = DateRange(date.fromisoformat(definition["start"]), date.fromisoformat(definition["end"]))
            days = None
        elif days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660):
            raise SegmentRejected(f"The funnel's range must be 1 to 3,660 days of data, not {_short(days)}.")
        validate_spec(spec)
    except FunnelRejected as exc:
        raise SegmentRejected(f"The funnel cannot be computed: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SegmentRejected):
            raise
        raise SegmentRejected(f"The funnel step definition is malformed ({exc}).") from None
    return spec, step, status, days, fixed


@dataclass(frozen=True)
class ListCheck:
    """An uploaded list of trader external ids as matched against the traders: ``external_ids``
    (every distinct id, in file order), ``known`` (how many match a trader who is not a test account),
    ``unknown`` (DataFrame row, external_id: ids no trader has, with their 1-based row in the
    upload), ``test_accounts`` (DataFrame row, external_id: ids of test accounts, left out)."""

    external_ids: tuple[str, ...]
    known: int
    unknown: pd.DataFrame
    test_accounts: pd.DataFrame


def parse_id_list(text: str) -> list[tuple[int, str]]:
    """(row, external id) of an uploaded list: one id per line, or a CSV whose first line has a
    column named trader_external_id, external_id or trader_id (other columns ignored). Rows are
    numbered from 1 (the first data line); blank lines are skipped. SegmentRejected for an empty file."""
    import csv
    import io

    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header = [h.strip().lower() for h in lines[0]] if lines else []
    column = next((header.index(n) for n in ("trader_external_id", "external_id", "trader_id") if n in header), None)
    if column is None and len(header) > 1:
        raise SegmentRejected("The list has several columns but none named trader_external_id, external_id or "
                              "trader_id: put the ids in one of those, or one id per line.")
    body = lines[1:] if column is not None else lines
    column = column or 0
    out = [(row, cells[column].strip()) for row, cells in enumerate(body, start=1)
           if len(cells) > column and cells[column].strip()]
    if not out:
        raise SegmentRejected("The list holds no trader id.")
    if len(out) > MAX_LIST_IDS:
        raise SegmentRejected(f"A list can hold at most {MAX_LIST_IDS:,} ids (this one has {len(out):,}).")
    return out


def _match_ids(conn: Connection, external_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
    """external id -> (trader_id, is_test) for the ids that name a trader."""
    found: dict[str, tuple[int, bool]] = {}
    ids = list(external_ids)
    for start in range(0, len(ids), 5_000):
        chunk = ids[start:start + 5_000]
        rows = conn.execute(sa.select(traders.c.external_id, traders.c.trader_id, traders.c.is_test)
                            .where(traders.c.external_id.in_(chunk)))
        found.update({ext: (int(tid), bool(test)) for ext, tid, test in rows})
    return found


def check_id_list(engine: Engine, rows: Sequence[tuple[int, str]]) -> ListCheck:
    """Match an uploaded list (:func:`parse_id_list`) against the traders."""
    for row, ext in rows:
        if len(ext) > 64 or "\x00" in ext:
            raise SegmentRejected(f"Row {row}: {_short(ext)} is not a trader id (at most 64 characters).")
    distinct = tuple(dict.fromkeys(ext for _, ext in rows))
    with reading(engine) as conn:
        found = _match_ids(conn, distinct)
    unknown = [(row, ext) for row, ext in rows if ext not in found]
    tests = [(row, ext) for row, ext in rows if ext in found and found[ext][1]]
    known = sum(1 for ext in distinct if ext in found and not found[ext][1])
    return ListCheck(distinct, known, pd.DataFrame(unknown, columns=["row", "external_id"]),
                     pd.DataFrame(tests, columns=["row", "external_id"]))


def normalise_definition(conn: Connection, kind: str, definition: Any, catalog: FieldCatalog | None = None) -> dict:
    """The definition of a segment of ``kind`` checked and in its stored form; SegmentRejected
    (RuleRejected for a rule) saying what is wrong. ``conn`` reads what the check needs."""
    if kind not in SEGMENT_KINDS:
        raise SegmentRejected(f"Unknown segment kind {_short(kind)}; use one of {', '.join(SEGMENT_KINDS)}.")
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as exc:
            raise SegmentRejected(f"The definition is not valid JSON ({exc}).") from None
    if not isinstance(definition, Mapping):
        raise SegmentRejected("A segment definition is a JSON object.")
    if kind == "rules":
        rule = validate_rule(rule_from_dict(definition), catalog or read_catalog(conn))
        return rule_to_dict(rule)
    if kind == "cluster":
        run_id = definition.get("run_id")
        clusters = definition.get("clusters", [definition["cluster"]] if "cluster" in definition else None)
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise SegmentRejected("A cluster segment needs the clustering run's id (run_id).")
        if (not isinstance(clusters, list | tuple) or not clusters
                or any(isinstance(c, bool) or not isinstance(c, int) for c in clusters)):
            raise SegmentRejected("A cluster segment needs one or more cluster numbers (cluster or clusters).")
        row = conn.execute(sa.select(clustering_runs.c.clusters).where(clustering_runs.c.run_id == run_id)).first()
        if row is None:
            raise SegmentRejected(f"There is no saved clustering run {run_id}.")
        ca = cluster_assignments.c
        known = set(_run_clusters(row[0])[0]) or set(conn.execute(
            sa.select(ca.cluster).where(ca.run_id == run_id).distinct()).scalars())
        missing = [c for c in clusters if c not in known]
        if missing:
            raise SegmentRejected(f"Clustering run {run_id} has no cluster {', '.join(map(str, missing))} "
                                  f"(it has {', '.join(map(str, sorted(known))) or 'none'}).")
        return {"run_id": run_id, "clusters": sorted(set(clusters))}
    if kind == "list":
        ids = definition.get("external_ids")
        if not isinstance(ids, list | tuple) or not ids or not all(isinstance(i, str) and i.strip() for i in ids):
            raise SegmentRejected("A list segment needs its trader ids (external_ids: a non-empty list of text).")
        if len(ids) > MAX_LIST_IDS:
            raise SegmentRejected(f"A list can hold at most {MAX_LIST_IDS:,} ids (this one has {len(ids):,}).")
        return {"external_ids": list(dict.fromkeys(i.strip() for i in ids))}
    _funnel_of(definition)
    keys = ("steps", "window_s", "order", "exclusions", "step_filters", "step", "status", "days", "start", "end")
    return {k: definition[k] for k in keys if k in definition}


def describe_definition(kind: str, definition: Mapping, catalog: FieldCatalog | None = None) -> str:
    """A saved definition in words (for lists of segments and Trader 360)."""
    if kind == "rules":
        return describe_rule(rule_from_dict(definition), catalog)
    if kind == "cluster":
        clusters = ", ".join(str(c) for c in definition.get("clusters", []))
        return f"Cluster {clusters} of clustering run {definition.get('run_id')}"
    if kind == "list":
        return f"A list of {len(definition.get('external_ids', [])):,} trader ids"
    steps = definition.get("steps", [])
    step = int(definition.get("step", 1))
    who = {"dropped": "dropped off", "in_window": "can still convert", None: "did not go on"}.get(
        definition.get("status"), "did not go on")
    when = (f"{definition['start']} – {definition['end']}" if "start" in definition
            else f"the last {definition['days']} days" if definition.get("days") else "all the data")
    nxt = steps[step] if step < len(steps) else "?"
    return f"Reached “{steps[step - 1] if steps else '?'}” but not “{nxt}” ({who}) in the funnel " \
           f"{' → '.join(steps)}, over {when}"


# ---------------------------------------------------------------------------------------------
# Saved segments: reading


@dataclass(frozen=True)
class Segment:
    """A saved segment (a row of ``segments``, its definition parsed)."""

    segment_id: int
    name: str
    kind: str
    definition: dict
    version: int
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    refreshed_at: datetime | None
    archived: bool


def _segment_of(row: sa.Row) -> Segment:
    m = row._mapping
    return Segment(int(m["segment_id"]), m["name"], m["kind"], json.loads(m["definition"]), int(m["version"]),
                   m["description"] or "", m["created_at"], m["created_by"], m["updated_at"], m["updated_by"],
                   m["refreshed_at"], bool(m["archived"]))


def _find(conn: Connection, key: int | str) -> Segment:
    s = segments.c
    if isinstance(key, int) and not isinstance(key, bool):
        row = conn.execute(sa.select(segments).where(s.segment_id == key)).first()
    else:
        row = conn.execute(sa.select(segments).where(s.name == str(key))).first()
        if row is None:  # names are matched exactly first, then regardless of case
            rows = conn.execute(sa.select(segments).where(sa.func.lower(s.name) == str(key).lower())).all()
            row = rows[0] if len(rows) == 1 else None
    if row is None:
        what = f"with id {key}" if isinstance(key, int) else f"named {_short(key)}"
        raise SegmentNotFound(f"No segment {what}.")
    return _segment_of(row)


def get_segment(engine: Engine, key: int | str) -> Segment:
    """The segment with this id (int) or name (str; exact, else case-insensitive); SegmentNotFound."""
    with reading(engine) as conn:
        return _find(conn, key)


SEGMENT_LIST_COLUMNS = ["segment_id", "name", "kind", "description", "version", "size", "refreshed_at",
                        "created_at", "created_by", "updated_at", "updated_by", "archived", "definition"]


def list_segments(engine: Engine, *, include_archived: bool = False) -> pd.DataFrame:
    """One row per saved segment, by name: SEGMENT_LIST_COLUMNS (``size``: current members;
    ``definition``: its JSON text)."""
    s = segments.c
    sizes = (sa.select(segment_members.c.segment_id, sa.func.count().label("size"))
             .group_by(segment_members.c.segment_id).subquery("sizes"))
    query = (sa.select(s.segment_id, s.name, s.kind, s.description, s.version,
                       sa.func.coalesce(sizes.c.size, 0).label("size"), s.refreshed_at, s.created_at, s.created_by,
                       s.updated_at, s.updated_by, s.archived, s.definition)
             .select_from(segments.outerjoin(sizes, sizes.c.segment_id == s.segment_id))
             .order_by(sa.func.lower(s.name), s.segment_id))
    if not include_archived:
        query = query.where(s.archived.is_(sa.false()))
    with reading(engine) as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=SEGMENT_LIST_COLUMNS)
    frame["size"] = frame["size"].astype("int64")
    frame["archived"] = frame["archived"].astype(bool)
    frame["description"] = frame["description"].fillna("")
    return frame


def list_versions(engine: Engine, segment_id: int) -> pd.DataFrame:
    """The saved definitions of a segment, newest first: version, definition (JSON text), saved_at, saved_by."""
    v = segment_versions.c
    with reading(engine) as conn:
        rows = conn.execute(sa.select(v.version, v.definition, v.saved_at, v.saved_by)
                            .where(v.segment_id == segment_id).order_by(v.version.desc())).all()
    return pd.DataFrame(rows, columns=["version", "definition", "saved_at", "saved_by"])


SIZE_COLUMNS = ["day", "size", "entered", "left"]


def compute_size_over_time(engine: Engine, segment_id: int, *, until: date | None = None) -> pd.DataFrame:
    """A segment's size at the end of each day (reporting time zone) from its first change to
    ``until`` (default: today), with the traders who entered and left that day: SIZE_COLUMNS
    (day: date, size / entered / left: int). Empty before the first refresh."""
    c = segment_changes.c
    day = period_start(c.changed_at, "day")
    query = (sa.select(day.label("day"), sa.func.sum(sa.case((c.change == "entered", 1), else_=0)),
                       sa.func.sum(sa.case((c.change == "left", 1), else_=0)))
             .where(c.segment_id == segment_id).group_by(day).order_by(day))
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    if not rows:
        return pd.DataFrame({"day": pd.Series(dtype=object), **{k: pd.Series(dtype="int64") for k in SIZE_COLUMNS[1:]}})
    found = {pd.Timestamp(d).date(): (int(e), int(lft)) for d, e, lft in rows}
    last = max(max(found), until or local_date(datetime.now(UTC).replace(tzinfo=None)))
    days = [min(found) + timedelta(days=i) for i in range((last - min(found)).days + 1)]
    frame = pd.DataFrame({"day": days, "entered": [found.get(d, (0, 0))[0] for d in days],
                          "left": [found.get(d, (0, 0))[1] for d in days]})
    frame["size"] = (frame["entered"] - frame["left"]).cumsum()
    return frame[SIZE_COLUMNS].astype({"size": "int64", "entered": "int64", "left": "int64"})


EXPORT_COLUMNS = ["trader_external_id", "first_name", "last_name", "email", "phone", "country", "language",
                  "acquisition_channel", "affiliate_id", "vip_tier", "kyc_status", "owner", "registered_at",
                  "consent_email", "consent_sms", "consent_push", "consent_whatsapp", "is_blocked",
                  "member_since"]


def export_members(engine: Engine, key: int | str, *, limit: int | None = None) -> pd.DataFrame:
    """A segment's current members for a CSV (:func:`analytics.export.to_csv`), by trader id:
    EXPORT_COLUMNS (``member_since``: when the refresh that found them ran, naive UTC)."""
    t, m = traders.c, segment_members.c
    with reading(engine) as conn:
        segment = _find(conn, key)
        query = (sa.select(t.external_id, t.first_name, t.last_name, t.email, t.phone, t.country, t.language,
                           t.acquisition_channel, t.affiliate_id, sa.func.coalesce(t.vip_tier, STANDARD_TIER),
                           t.kyc_status, t.owner, t.registered_at, t.consent_email, t.consent_sms, t.consent_push,
                           t.consent_whatsapp, t.is_blocked, m.entered_at)
                 .select_from(segment_members.join(traders, t.trader_id == m.trader_id))
                 .where(m.segment_id == segment.segment_id).order_by(t.trader_id))
        if limit is not None:
            query = query.limit(limit)
        frame = pd.DataFrame(conn.execute(query).all(), columns=EXPORT_COLUMNS)
    for column in ("consent_email", "consent_sms", "consent_push", "consent_whatsapp", "is_blocked"):
        frame[column] = frame[column].astype(bool)
    return frame


def member_ids(engine: Engine, key: int | str) -> np.ndarray:
    """The trader ids of a segment's current members, sorted."""
    with reading(engine) as conn:
        segment = _find(conn, key)
        ids = conn.execute(sa.select(segment_members.c.trader_id).where(
            segment_members.c.segment_id == segment.segment_id).order_by(segment_members.c.trader_id)).scalars().all()
    return np.asarray(ids, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Saved segments: writing


LOCK_NAME = "traderlens.segments"
# Segment writers of one process (the scheduler's thread and a page's button) take turns: ids are
# allocated max + 1. Across processes, PostgreSQL's advisory lock does it (DuckDB has one writer).
_PROCESS_LOCK = threading.RLock()


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """One transaction for a segment write, serialised with every other segment writer."""
    with _PROCESS_LOCK, writing(engine, lock=LOCK_NAME) as conn:
        yield conn


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(tzinfo=None, microsecond=0)


def _check_name(conn: Connection, name: Any, *, other_than: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SegmentRejected("A segment needs a name.")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise SegmentRejected(f"A segment name can have at most {MAX_NAME} characters.")
    if not name.isprintable():
        raise SegmentRejected("A segment name cannot hold control characters.")
    s = segments.c
    query = sa.select(s.name).where(sa.func.lower(s.name) == name.lower())
    if other_than is not None:
        query = query.where(s.segment_id != other_than)
    taken = conn.execute(query).scalar()
    if taken is not None:
        raise SegmentRejected(f"A segment named “{taken}” exists already: choose another name.")
    return name


def _user(value: Any) -> str:
    return (str(value).strip() or "app")[:80]


def create_segment(engine: Engine, *, name: str, kind: str, definition: Any, description: str = "",
                   created_by: str = "app", refresh: bool = True, now: datetime | None = None) -> Segment:
    """Save a new segment (version 1) and, with ``refresh``, compute its members in the same
    transaction. ``engine`` must be able to write. SegmentRejected for a taken or bad name or a
    definition that cannot be used (nothing is written then)."""
    at = _now(now)
    ids = _precomputed_ids(engine, kind, definition)
    with _writing(engine) as conn:
        name = _check_name(conn, name)
        stored = normalise_definition(conn, kind, definition)
        segment_id = database.next_id(conn, segments)
        text, user = _json(stored), _user(created_by)
        conn.execute(segments.insert().values(
            segment_id=segment_id, name=name, description=str(description or "").strip() or None, kind=kind,
            definition=text, version=1, created_at=at, created_by=user, updated_at=at, updated_by=user,
            refreshed_at=None, archived=False))
        conn.execute(segment_versions.insert().values(segment_id=segment_id, version=1, definition=text,
                                                      saved_at=at, saved_by=user))
        segment = _find(conn, segment_id)
        if refresh:
            _write_membership(conn, segment, at, ids)
            segment = _find(conn, segment_id)
    return segment


def update_segment(engine: Engine, key: int | str, *, definition: Any = None, kind: str | None = None,
                   name: str | None = None, description: str | None = None, updated_by: str = "app",
                   refresh: bool = True, now: datetime | None = None) -> Segment:
    """Change a segment: a new definition (of its kind, or of ``kind``) becomes version + 1 (kept in
    segment_versions) and, with ``refresh``, its members are recomputed in the same transaction; a
    new name or description changes no version. An unchanged definition changes nothing."""
    at = _now(now)
    with reading(engine) as conn:
        current = _find(conn, key)
    new_kind = kind or current.kind
    ids = _precomputed_ids(engine, new_kind, definition) if definition is not None else None
    with _writing(engine) as conn:
        segment = _find(conn, current.segment_id)
        values: dict[str, Any] = {}
        if name is not None and name.strip() != segment.name:
            values["name"] = _check_name(conn, name, other_than=segment.segment_id)
        if description is not None and description.strip() != segment.description:
            values["description"] = description.strip() or None
        changed = False
        if definition is not None:
            stored = normalise_definition(conn, new_kind, definition)
            changed = stored != segment.definition or new_kind != segment.kind
            if changed:
                version = segment.version + 1
                values.update(definition=_json(stored), kind=new_kind, version=version)
                conn.execute(segment_versions.insert().values(segment_id=segment.segment_id, version=version,
                                                              definition=_json(stored), saved_at=at,
                                                              saved_by=_user(updated_by)))
        if not values:
            return segment
        values.update(updated_at=at, updated_by=_user(updated_by))
        conn.execute(segments.update().where(segments.c.segment_id == segment.segment_id).values(**values))
        segment = _find(conn, segment.segment_id)
        if changed and refresh:
            _write_membership(conn, segment, at, ids)
            segment = _find(conn, segment.segment_id)
    return segment


def archive_segment(engine: Engine, key: int | str, *, archived: bool = True, updated_by: str = "app",
                    now: datetime | None = None) -> Segment:
    """Archive a segment (``archived=False`` restores it). An archived segment keeps its members and
    history as they were, is no longer refreshed and is not offered as a filter."""
    at = _now(now)
    with _writing(engine) as conn:
        segment = _find(conn, key)
        if segment.archived != archived:
            conn.execute(segments.update().where(segments.c.segment_id == segment.segment_id).values(
                archived=archived, updated_at=at, updated_by=_user(updated_by)))
            segment = _find(conn, segment.segment_id)
    return segment


@dataclass(frozen=True)
class RefreshResult:
    """One segment's refresh: its size after it, traders who entered and left, when it ran, how long
    it took; ``error`` says why a refresh failed (its membership is then unchanged)."""

    segment_id: int
    name: str
    version: int
    size: int
    entered: int
    left: int
    refreshed_at: datetime | None
    seconds: float
    error: str | None = None


def _precomputed_ids(engine: Engine, kind: str, definition: Any) -> np.ndarray | None:
    """The member ids of kinds computed outside SQL (funnel drop-offs), read before the write
    transaction; None for the other kinds (their members are a SELECT run inside it)."""
    if kind != "funnel_step" or not isinstance(definition, Mapping):
        return None
    from analytics.events import check_event_names, compute_data_span
    from analytics.funnels import compute_dropoffs

    spec, step, status, days, fixed = _funnel_of(definition)
    names = [*spec.steps, *(e.event for e in spec.exclusions)]
    try:
        check_event_names(engine, names)
    except TraderLensError as exc:
        raise SegmentRejected(f"The funnel cannot be computed: {exc}") from None
    span = compute_data_span(engine)
    if span is None:
        return np.zeros(0, dtype=np.int64)
    date_range = fixed or (DateRange(max(span.start, span.end - timedelta(days=days - 1)), span.end) if days else None)
    dropoffs = compute_dropoffs(engine, spec, step=step, date_range=date_range, data_end=span.end)
    return np.unique(dropoffs.of_status(status)["trader_id"].to_numpy(dtype=np.int64))


def _assign_new_traders(conn: Connection, run_id: int) -> None:
    """Give the traders who arrived after clustering run ``run_id`` their cluster (the run's stored
    model, no refit: analytics.segmentation), so its cluster segments take them in. A run saved
    without a model (or gone: the caller's check names it) is left as it is."""
    model = conn.execute(sa.select(clustering_runs.c.model).where(clustering_runs.c.run_id == run_id)).scalar()
    if not model:
        return
    from analytics.segmentation import ClusteringRejected, assign_new_traders

    try:
        assign_new_traders(conn, run_id)
    except ClusteringRejected as exc:
        raise SegmentRejected(str(exc)) from None


def _current_members(conn: Connection, segment: Segment, ids: np.ndarray | None) -> sa.Select | np.ndarray:
    """What the segment's members are now: a SELECT of trader_id, or the ids themselves. Traders who
    arrived after a clustering run the segment reads get their cluster first."""
    d = segment.definition
    not_test = traders.c.is_test.is_(sa.false())
    if segment.kind == "rules":
        rule = rule_from_dict(d)
        for name in rule_fields(rule):
            namespace, _, run = name.partition(".")
            if namespace == "cluster" and run.isdigit():
                _assign_new_traders(conn, int(run))
        return rule_members(rule, read_catalog(conn))
    if segment.kind == "cluster":
        _assign_new_traders(conn, int(d["run_id"]))
        ca = cluster_assignments.c
        return (sa.select(ca.trader_id)
                .select_from(cluster_assignments.join(traders, traders.c.trader_id == ca.trader_id))
                .where(ca.run_id == d["run_id"], ca.cluster.in_(d["clusters"]), not_test))
    if segment.kind == "list":
        found = _match_ids(conn, d["external_ids"])
        return np.unique(np.array([tid for tid, test in found.values() if not test], dtype=np.int64))
    assert ids is not None, "funnel_step members are computed before the transaction"
    return ids


def _write_membership(conn: Connection, segment: Segment, at: datetime,
                      ids: np.ndarray | None) -> tuple[int, int, int]:
    """Replace the segment's members with the current ones inside the open transaction, recording
    each trader who entered or left at ``at``; (size, entered, left)."""
    current = _current_members(conn, segment, ids)
    cur = sa.Table("segment_refresh", sa.MetaData(),
                   sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
                   prefixes=["TEMPORARY"])
    # Dropped at the end; a failure rolls the transaction back, which removes it on both backends.
    cur.create(conn)
    if isinstance(current, np.ndarray):
        database.bulk_insert(conn, cur, pd.DataFrame({"trader_id": current}))
    else:
        conn.execute(cur.insert().from_select(["trader_id"], current.distinct()))
    sid, m = segment.segment_id, segment_members
    held = sa.exists().where(m.c.segment_id == sid, m.c.trader_id == cur.c.trader_id)
    kept = sa.exists().where(cur.c.trader_id == m.c.trader_id)
    moves = sa.union_all(
        sa.select(cur.c.trader_id.label("trader_id"), sa.literal("entered").label("change")).where(~held),
        sa.select(m.c.trader_id, sa.literal("left")).where(m.c.segment_id == sid, ~kept),
    ).subquery("moves")
    base = database.next_id(conn, segment_changes)
    number = sa.func.row_number().over(order_by=(moves.c.change, moves.c.trader_id))
    conn.execute(segment_changes.insert().from_select(
        ["change_id", "segment_id", "trader_id", "change", "changed_at", "version"],
        sa.select(base - 1 + number, sa.literal(sid, sa.BigInteger), moves.c.trader_id,
                  moves.c.change, sa.literal(at, sa.DateTime), sa.literal(segment.version, sa.Integer))))
    counts = dict(conn.execute(
        sa.select(segment_changes.c.change, sa.func.count()).where(segment_changes.c.change_id >= base)
        .group_by(segment_changes.c.change)).all())
    conn.execute(m.delete().where(m.c.segment_id == sid, ~kept))
    conn.execute(m.insert().from_select(
        ["segment_id", "trader_id", "entered_at"],
        sa.select(sa.literal(sid, sa.BigInteger), cur.c.trader_id, sa.literal(at, sa.DateTime)).where(~held)))
    size = conn.execute(sa.select(sa.func.count()).select_from(cur)).scalar_one()
    conn.execute(segments.update().where(segments.c.segment_id == sid).values(refreshed_at=at))
    cur.drop(conn)
    return int(size), int(counts.get("entered", 0)), int(counts.get("left", 0))


# A refresh that moves this many traders updates the planner's statistics of the membership tables.
ANALYZE_AFTER_CHANGES = 1_000


def refresh_segment(engine: Engine, key: int | str, *, now: datetime | None = None) -> RefreshResult:
    """Recompute one segment's members and record who entered and left, in one transaction.
    ``engine`` must be able to write. Raises SegmentRejected when the definition can no longer be
    used (a field or clustering run gone); nothing changes then."""
    started = time.perf_counter()
    with reading(engine) as conn:
        segment = _find(conn, key)
    ids = _precomputed_ids(engine, segment.kind, segment.definition)
    at = _now(now)
    with _writing(engine) as conn:
        segment = _find(conn, segment.segment_id)
        size, entered, left = _write_membership(conn, segment, at, ids)
    if entered + left >= ANALYZE_AFTER_CHANGES and engine.dialect.name == "postgresql":
        # Until autovacuum gets to them, PostgreSQL plans the fresh rows as a handful: the lifecycle of
        # an "entered segment" event took 8.7 s instead of 0.14 s at 200,000 traders right after a
        # 20,000-member refresh.
        with writing(engine) as conn:
            conn.execute(sa.text("ANALYZE segment_members, segment_changes"))
    return RefreshResult(segment.segment_id, segment.name, segment.version, size, entered, left, at,
                         time.perf_counter() - started)


def refresh_segments(engine: Engine, names: Sequence[str] | None = None, *,
                     now: datetime | None = None) -> list[RefreshResult]:
    """Refresh the named segments (default: every segment not archived), each in its own
    transaction, by name. A segment that cannot be refreshed gets a result with ``error`` set (the
    others go on); an unknown name raises SegmentNotFound before anything is refreshed."""
    if names is None:
        keys: list[int | str] = [int(i) for i in list_segments(engine)["segment_id"]]
    else:
        keys = [get_segment(engine, name).segment_id for name in names]
    out = []
    for key in keys:
        try:
            out.append(refresh_segment(engine, key, now=now))
        except TraderLensError as exc:
            segment = get_segment(engine, key)
            out.append(RefreshResult(segment.segment_id, segment.name, segment.version,
                                     len(member_ids(engine, key)), 0, 0, segment.refreshed_at, 0.0, str(exc)))
    return out


# ---------------------------------------------------------------------------------------------
# Comparing segments


PROFILE_COLUMNS = ["feature", "label", "group", "unit", "population_mean", "population_std", "segment_id",
                   "members", "mean", "z"]


@dataclass(frozen=True)
class FeatureProfile:
    """Each feature's mean among a segment's members against every trader's (test accounts left
    out), from the materialised snapshot of ``as_of`` (None: no snapshot, ``frame`` empty).

    ``frame``: one row per feature and segment, PROFILE_COLUMNS: ``population_mean`` / ``_std``
    over the traders with a value, ``members`` (members in the snapshot), ``mean`` (NaN when no
    member has a value) and ``z`` = (mean - population_mean) / population_std (NaN when the
    population does not vary)."""

    as_of: datetime | None
    frame: pd.DataFrame


def compute_feature_profile(engine: Engine, segment_ids: Sequence[int]) -> FeatureProfile:
    """The :class:`FeatureProfile` of each of ``segment_ids``, in one read of the feature snapshot."""
    from analytics.features import FEATURES, feature_table

    ids = [int(s) for s in segment_ids]
    with reading(engine) as conn:
        as_of = _features_as_of(conn)
        if as_of is None:
            return FeatureProfile(None, pd.DataFrame(columns=PROFILE_COLUMNS))
        f = feature_table().alias("features")
        names = [feat.name for feat in FEATURES]
        kept = sa.select(traders.c.trader_id).where(traders.c.is_test.is_(sa.false()))
        stats = [fn(f.c[n]).label(f"{kind}{i}") for i, n in enumerate(names)
                 for kind, fn in (("m", sa.func.avg), ("s", sa.func.stddev_samp))]
        population = conn.execute(sa.select(*stats).where(f.c.trader_id.in_(kept))).one()
        m = segment_members.c
        per_segment = conn.execute(
            sa.select(m.segment_id, sa.func.count(), *(sa.func.avg(f.c[n]) for n in names))
            .select_from(segment_members.join(f, f.c.trader_id == m.trader_id))
            .where(m.segment_id.in_(ids)).group_by(m.segment_id)).all()
    found = {int(row[0]): row for row in per_segment}
    rows = []
    for sid in ids:
        row = found.get(sid)
        for i, feat in enumerate(FEATURES):
            mean_p, std_p = population[2 * i], population[2 * i + 1]
            mean_p = math.nan if mean_p is None else float(mean_p)
            std_p = math.nan if std_p is None else float(std_p)
            value = math.nan if row is None or row[2 + i] is None else float(row[2 + i])
            z = (value - mean_p) / std_p if std_p and not math.isnan(std_p) else math.nan
            rows.append((feat.name, feat.label, feat.group, feat.unit, mean_p, std_p, sid,
                         int(row[1]) if row is not None else 0, value, z))
    return FeatureProfile(as_of, pd.DataFrame(rows, columns=PROFILE_COLUMNS))
