"""The rule builder: conditions and nested AND / OR groups edited in place, the rule they make, and
what it selects now (a live count and a sample of members).

The rule's shape (which groups and conditions, in which order) lives in session state under
``<key>.tree``; each condition's field, operator and value live in their widgets, keyed by the
condition's id and, for the operator and the value, by the field (and operator) they belong to, so a
changed field starts from a fresh operator instead of one that does not apply. :func:`load_rule`
puts a saved rule into the builder by setting that state before the widgets are drawn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import streamlit as st

from analytics.segments import (
    MAX_DEPTH,
    OPERATOR_LABELS,
    FieldCatalog,
    RulePreview,
    RuleRejected,
    rule_from_dict,
    rule_from_json,
    rule_to_dict,
    validate_rule,
)
from analytics.segments import Field as RuleField
from components import labels
from components.text import escape_markdown

_EMPTY_OPS = ("is empty", "is not empty")
DEFAULT_FIELD = "trader.country"
COMBINE_LABELS = {"and": "All of these", "or": "Any of these"}
TRADER_PAGE = "trader"  # url_path of the Trader 360 page


def _tree(key: str) -> dict:
    state = st.session_state
    if f"{key}.tree" not in state:
        state[f"{key}.next"] = 1
        state[f"{key}.tree"] = {"uid": "g0", "items": [{"uid": "c1"}]}
    return state[f"{key}.tree"]


def _uid(key: str, kind: str) -> str:
    st.session_state[f"{key}.next"] = st.session_state.get(f"{key}.next", 1) + 1
    return f"{kind}{st.session_state[f'{key}.next']}"


def _find(node: dict, uid: str) -> tuple[dict | None, dict | None]:
    """(the node with ``uid``, its parent group) in the tree under ``node``."""
    for child in node.get("items", []):
        if child["uid"] == uid:
            return child, node
        if "items" in child:
            found, parent = _find(child, uid)
            if found is not None:
                return found, parent
    return None, None


def _add_condition(key: str, group_uid: str) -> None:
    tree = _tree(key)
    group = tree if group_uid == tree["uid"] else _find(tree, group_uid)[0]
    if group is not None:
        group["items"].append({"uid": _uid(key, "c")})


def _add_group(key: str, group_uid: str) -> None:
    tree = _tree(key)
    group = tree if group_uid == tree["uid"] else _find(tree, group_uid)[0]
    if group is not None:
        uid = _uid(key, "g")
        st.session_state[f"{key}.{uid}.combine"] = "or"  # a nested group is most often an alternative
        group["items"].append({"uid": uid, "items": [{"uid": _uid(key, "c")}]})


def _remove(key: str, uid: str) -> None:
    node, parent = _find(_tree(key), uid)
    if parent is not None and node is not None:
        parent["items"].remove(node)


def clear_rule(key: str) -> None:
    """Empty the builder (one blank condition); other widgets under ``key`` are left alone."""
    own = re.compile(rf"^{re.escape(key)}\.(tree|next|json_error|[gc]\d+)(\.|$)")
    for name in [k for k in st.session_state if isinstance(k, str) and own.match(k)]:
        del st.session_state[name]


def load_rule(key: str, rule: Mapping, catalog: FieldCatalog) -> None:
    """Put ``rule`` (JSON-ready form) into the builder: its shape and every widget's value. Call it
    from a callback (before the widgets are drawn). Conditions on fields the catalog lacks are kept
    with their field name, and the check below the builder names them."""
    clear_rule(key)
    checked = rule_from_dict(rule)
    st.session_state[f"{key}.next"] = 1
    state = st.session_state

    def group(g: Any, uid: str) -> dict:
        state[f"{key}.{uid}.combine"] = g.combine
        items = []
        for node in g.items:
            if hasattr(node, "items"):
                items.append(group(node, _uid(key, "g")))
                continue
            cid = _uid(key, "c")
            state[f"{key}.{cid}.field"] = node.field
            state[f"{key}.{cid}.op.{node.field}"] = node.op
            f = catalog.get(node.field)
            if f is not None and node.op not in _EMPTY_OPS:
                _set_value(f"{key}.{cid}.value.{node.field}.{node.op}", f, node.op, node.value)
            items.append({"uid": cid})
        return {"uid": uid, "items": items}

    state[f"{key}.tree"] = group(checked, "g0")


def load_rule_json(key: str, text: str, catalog: FieldCatalog) -> None:
    """Callback: load a pasted rule (JSON) into the builder, or keep why it cannot be used for
    :func:`render_json_error`."""
    try:
        rule = validate_rule(rule_from_json(text), catalog)
    except RuleRejected as exc:
        st.session_state[f"{key}.json_error"] = str(exc)
        return
    load_rule(key, rule_to_dict(rule), catalog)


def render_json_error(key: str) -> None:
    """Why the last pasted rule was not loaded, once."""
    error = st.session_state.pop(f"{key}.json_error", None)
    if error:
        st.warning(escape_markdown(error), icon=":material/rule:")


def _set_value(wkey: str, f: RuleField, op: str, value: Any) -> None:
    """The widget state that shows ``value`` (as :func:`_value_widget` reads it back)."""
    state = st.session_state
    if op == "between" and isinstance(value, list | tuple) and len(value) == 2:
        if f.type == "time":
            state[wkey] = tuple(_as_date(v) for v in value)
        else:
            state[f"{wkey}.lo"], state[f"{wkey}.hi"] = (_as_number(v) for v in value)
    elif op in ("in", "not in"):
        state[wkey] = list(value) if isinstance(value, list | tuple) else [value]
    elif f.type == "time":
        state[wkey] = _as_date(value)
    elif f.type == "number":
        state[wkey] = _as_number(value)
    else:
        state[wkey] = value


def _as_date(value: Any) -> date | None:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        return None


def _as_number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _seed(wkey: str, value: Any) -> None:
    """A widget's starting value, through session state: a widget given both a default and a state
    set by :func:`load_rule` would warn, and the state must win."""
    if wkey not in st.session_state:
        st.session_state[wkey] = value


def _field_label(f: RuleField | None, name: str) -> str:
    return f"{f.group} · {f.label}" if f is not None else f"{name} (no longer available)"


def render_rule_editor(catalog: FieldCatalog, *, key: str) -> dict:
    """Draw the builder; the rule it holds now, in JSON-ready form (not yet validated: an unfinished
    condition shows up in :func:`analytics.segments.validate_rule`'s message)."""
    return _render_group(_tree(key), catalog, key, 0)


def _render_group(node: dict, catalog: FieldCatalog, key: str, depth: int) -> dict:
    uid = node["uid"]
    with st.container(border=depth > 0, key=f"{key}.{uid}"):
        head, tail = st.columns([6, 1], vertical_alignment="center")
        _seed(f"{key}.{uid}.combine", "and")
        combine = head.segmented_control(
            "Match", list(COMBINE_LABELS), format_func=COMBINE_LABELS.get, required=True,
            key=f"{key}.{uid}.combine", label_visibility="collapsed",
            help="A trader is in the segment when all of the conditions below hold, or any of them.")
        if depth > 0:
            tail.button("Remove group", key=f"{key}.{uid}.remove", on_click=_remove, args=(key, uid),
                        icon=":material/delete:", type="tertiary")
        items = [_render_group(child, catalog, key, depth + 1) if "items" in child
                 else _render_condition(child, catalog, key) for child in node["items"]]
        if not node["items"]:
            st.caption("No condition: every trader." if depth == 0 else "An empty group: add a condition.")
        b1, b2, _ = st.columns([2, 2, 5])
        b1.button("Add condition", key=f"{key}.{uid}.add", on_click=_add_condition, args=(key, uid),
                  icon=":material/add:", type="secondary")
        if depth < MAX_DEPTH:
            b2.button("Add group", key=f"{key}.{uid}.add_group", on_click=_add_group, args=(key, uid),
                      icon=":material/account_tree:", type="secondary",
                      help="A nested group of conditions, matched as a whole (for “A and (B or C)”).")
    return {"combine": combine, "items": items}


def _render_condition(node: dict, catalog: FieldCatalog, key: str) -> dict:
    uid = node["uid"]
    names = [f.name for f in catalog.fields]
    fkey = f"{key}.{uid}.field"
    chosen = st.session_state.get(fkey)
    if chosen is not None and chosen not in names:
        names = [chosen, *names]  # a loaded rule's field that is gone: shown, and refused by the check
    c1, c2, c3, c4 = st.columns([4, 2, 4, 1], vertical_alignment="bottom")
    _seed(fkey, DEFAULT_FIELD if DEFAULT_FIELD in names else names[0])
    name = c1.selectbox("Field", names, key=fkey, label_visibility="collapsed",
                        format_func=lambda n: _field_label(catalog.get(n), n))
    f = catalog.get(name)
    c4.button("", key=f"{key}.{uid}.remove", on_click=_remove, args=(key, uid), icon=":material/close:",
              type="tertiary", help="Remove this condition")
    if f is None:
        op = st.session_state.get(f"{key}.{uid}.op.{name}", "=")
        c2.caption(escape_markdown(OPERATOR_LABELS.get(op, op)))
        return {"field": name, "op": op}
    op = c2.selectbox("Operator", f.operators, key=f"{key}.{uid}.op.{name}", format_func=OPERATOR_LABELS.get,
                      label_visibility="collapsed")
    if op in _EMPTY_OPS:
        return {"field": name, "op": op}
    value = _value_widget(c3, f, op, f"{key}.{uid}.value.{name}.{op}", catalog)
    return {"field": name, "op": op, "value": value}


def _value_widget(where: Any, f: RuleField, op: str, wkey: str, catalog: FieldCatalog) -> Any:
    """The value input for ``f`` and ``op``; its value in JSON-ready form (dates as ISO text)."""
    hidden = "collapsed"
    if f.type == "bool":
        return where.selectbox("Value", [True, False], key=wkey, format_func=lambda b: "Yes" if b else "No",
                               label_visibility=hidden)
    if f.type == "number":
        if op == "between":
            lo, hi = where.columns(2)
            _seed(f"{wkey}.lo", 0.0)
            _seed(f"{wkey}.hi", 0.0)
            low = lo.number_input("From", key=f"{wkey}.lo", label_visibility=hidden, format="%g")
            high = hi.number_input("To", key=f"{wkey}.hi", label_visibility=hidden, format="%g")
            return [low, high]
        _seed(wkey, 0.0)
        return where.number_input("Value", key=wkey, label_visibility=hidden, format="%g",
                                  help=f"{f.description} ({f.unit})" if f.unit else f.description or None)
    if f.type == "time":
        day = catalog.context.day or date.today()
        if op == "between":
            _seed(wkey, (day - timedelta(days=30), day))
            picked = where.date_input("Days", key=wkey,
                                      label_visibility=hidden, format="YYYY-MM-DD")
            return [d.isoformat() for d in picked] if isinstance(picked, list | tuple) else [str(picked)]
        _seed(wkey, day)
        picked = where.date_input("Day", key=wkey, label_visibility=hidden, format="YYYY-MM-DD")
        return picked.isoformat() if isinstance(picked, date) else None
    current = st.session_state.get(wkey)
    held = current if isinstance(current, list) else ([current] if current is not None else [])
    options = list(dict.fromkeys([*f.choices, *held]))
    free = f.type == "text"  # suggestions only: any value may be typed
    if op in ("in", "not in"):
        return where.multiselect("Values", options, key=wkey, format_func=f.choice_label, label_visibility=hidden,
                                 accept_new_options=free, placeholder="Pick or type values" if free else "Pick values")
    if free and not f.choices:  # by the field alone: the widget's kind must not change with its value
        text = where.text_input("Value", key=wkey, label_visibility=hidden, max_chars=500, placeholder="A value")
        return text
    _seed(wkey, None)
    return where.selectbox("Value", options, key=wkey, format_func=f.choice_label,
                           label_visibility=hidden, accept_new_options=free,
                           placeholder="Pick or type a value" if free else "Pick a value")


def _stage_label(value: object) -> object:
    from analytics.lifecycle import STAGE_LABELS

    return STAGE_LABELS.get(value, value) if isinstance(value, str) else value


def trader_link(external_id: str) -> str:
    """The Trader 360 page of a trader (relative link)."""
    return f"./{TRADER_PAGE}?trader={quote(str(external_id), safe='')}"


def render_preview(preview: RulePreview, *, key: str) -> None:
    """The live count, what it was computed on, and the sample of members with links to Trader 360."""
    share = preview.count / preview.population if preview.population else 0.0
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.metric("Members now", f"{preview.count:,}", help="Traders who match the rule now (test accounts left out).")
    on = []
    if preview.context.day is not None:
        on.append(f"lifecycle stage at the end of {preview.context.day:%d %b %Y}")
    if preview.context.features_as_of is not None:
        on.append(f"features as of {preview.context.features_as_of:%d %b %Y %H:%M} UTC (the materialised snapshot)")
    c2.caption(f"{share:.1%} of {preview.population:,} traders, counted in {preview.seconds:.2f} s"
               + (f"; {', '.join(on)}." if on else "."))
    if preview.sample.empty:
        st.info("No trader matches this rule now.", icon=":material/filter_alt_off:")
        return
    sample = preview.sample.drop(columns=["trader_id"]).copy()
    sample.insert(0, "open", [trader_link(e) for e in sample["trader_external_id"]])
    sample["country"] = sample["country"].map(labels.country_name)
    if "Lifecycle stage" in sample:
        sample["Lifecycle stage"] = sample["Lifecycle stage"].map(_stage_label)
    with st.container(key=key):
        st.caption(f"A sample of {len(sample)} members, newest registrations first:")
        st.dataframe(sample, hide_index=True, column_config={
            "open": st.column_config.LinkColumn("Trader 360", display_text="Open", width="small"),
            "trader_external_id": "Trader id", "name": "Name", "country": "Country", "vip_tier": "VIP tier",
            "registered_at": st.column_config.DatetimeColumn("Registered", format="YYYY-MM-DD"),
        })
