"""The naive way, as a yardstick: pull the rows an analysis needs into pandas and compute there.

The app never does this (it aggregates in the database and pulls aggregates, not rows); benchmarks/analytics_bench.py
times these straightforward pandas versions next to the pushed-down SQL of ``analytics/`` on the
same DuckDB file, so the ratio in its table says what the rule buys.

Every function takes a :class:`Source` (where rows come from and how they are fetched) and the
same arguments as its ``analytics`` counterpart, and returns the same numbers in a plain shape the
benchmark compares with the real result. The SQL here only selects and filters rows (WHERE on
event, kind, status and time): every GROUP BY, DISTINCT, window and join happens in pandas.

Semantics: KPIs, trends, breakdowns, retention, LTV, lifecycle and stages compute the same
numbers as the analytics modules (the benchmark asserts it). The funnel versions are simplified
where PostHog's per-attempt algorithm would need a per-trader loop: see each docstring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.events import churn_activity
from analytics.filters import TraderFilter

EVERYONE_BUT_TEST = TraderFilter()
FETCH_MODES = ("read_sql", "duckdb-df")


@dataclass
class Source:
    """Where the naive code reads rows. ``fetch``: ``duckdb-df`` (DuckDB's own DataFrame export, the
    cheapest transfer there is: the benchmark's baseline) or ``read_sql`` (pd.read_sql through
    SQLAlchemy, slower). Fetch time and fetched rows are accumulated."""

    engine: Engine
    fetch: str = "duckdb-df"
    fetch_s: float = 0.0
    rows: int = 0
    queries: list[str] = field(default_factory=list)

    def read(self, sql: str) -> pd.DataFrame:
        t0 = time.perf_counter()
        if self.fetch == "duckdb-df":
            with self.engine.connect() as conn:
                frame = conn.connection.driver_connection.execute(sql).df()
        else:
            frame = pd.read_sql(sa.text(sql), self.engine)
        self.fetch_s += time.perf_counter() - t0
        self.rows += len(frame)
        self.queries.append(" ".join(sql.split()))
        return frame


def _lit(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"
    return f"TIMESTAMP '{value:%Y-%m-%d} 00:00:00'"


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def _in(values) -> str:
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + ")"


def kept_traders(src: Source, trader_filter: TraderFilter) -> pd.Index:
    """Trader ids passing the filter, from the whole traders (and accounts) table in pandas."""
    t = src.read("SELECT trader_id, is_test, country, acquisition_channel, affiliate_id, vip_tier FROM traders")
    keep = pd.Series(True, index=t.index)
    if not trader_filter.include_test:
        keep &= ~t["is_test"].astype(bool)
    if trader_filter.countries:
        keep &= t["country"].isin(trader_filter.countries)
    if trader_filter.channels:
        keep &= t["acquisition_channel"].isin(trader_filter.channels)
    if trader_filter.affiliates:
        keep &= t["affiliate_id"].isin(trader_filter.affiliates)
    if trader_filter.vip_tiers:
        tiers = t["vip_tier"].fillna("standard")
        keep &= tiers.isin(trader_filter.vip_tiers)
    if trader_filter.platforms:
        a = src.read("SELECT trader_id, platform FROM accounts")
        keep &= t["trader_id"].isin(a.loc[a["platform"].isin(trader_filter.platforms), "trader_id"])
    return pd.Index(t.loc[keep, "trader_id"])


def floor_period(ts: pd.Series, period: str, week_start: str = "monday") -> pd.Series:
    """Start of the day / week / month of each timestamp (datetime64 values)."""
    day = ts.dt.normalize()
    if period == "day":
        return day
    if period == "week":
        offset = day.dt.weekday if week_start == "monday" else (day.dt.weekday + 1) % 7
        return day - pd.to_timedelta(offset, unit="D")
    if period == "month":
        return day - pd.to_timedelta(day.dt.day - 1, unit="D")
    raise ValueError(period)


def _floor_date(day: date, period: str, week_start: str = "monday") -> date:
    return floor_period(pd.Series([pd.Timestamp(day)]), period, week_start).iloc[0].date()


def _step(p: pd.Series | pd.Timestamp, period: str, n: int = 1):
    if period == "day":
        return p + pd.Timedelta(days=n)
    if period == "week":
        return p + pd.Timedelta(weeks=n)
    return p + pd.DateOffset(months=n)


def _period_index(first: date, last: date, period: str) -> list[pd.Timestamp]:
    out = [pd.Timestamp(first)]
    while out[-1] < pd.Timestamp(last):
        out.append(_step(out[-1], period))
    return out


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------

def lifecycle(src: Source, *, event: str, period: str, date_from: date, date_to: date,
              new_basis: str = "first-activity", week_start: str = "monday",
              trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """New / returning / resurrecting / dormant per period, the rules of analytics.lifecycle.

    Pulls every ``event`` row up to the end of the range (the first-ever activity decides "new")."""
    first = _floor_date(date_from, period, week_start)
    last = _floor_date(date_to, period, week_start)
    look_back = _step(pd.Timestamp(first), period, -1)
    end = _step(pd.Timestamp(last), period, 1)
    keep = kept_traders(src, trader_filter)
    ev = activity(src, event, until=end.to_pydatetime())
    ev = ev[ev["trader_id"].isin(keep)]
    ev["p"] = floor_period(ev["occurred_at"], period, week_start)
    if new_basis == "registration":
        t = src.read("SELECT trader_id, registered_at, lead_at FROM traders")
        created = floor_period(t["registered_at"].fillna(t["lead_at"]), period, week_start)
        created.index = t["trader_id"]
    else:
        created = ev.groupby("trader_id")["p"].min()
    act = ev.loc[ev["p"] >= look_back, ["trader_id", "p"]].drop_duplicates().sort_values(["trader_id", "p"])
    g = act.groupby("trader_id")["p"]
    act["prev_p"] = g.shift(1)
    act["next_p"] = g.shift(-1)
    act["created_p"] = act["trader_id"].map(created)
    status = np.where(act["prev_p"].isna() & (act["created_p"] == act["p"]), "new",
                      np.where(act["prev_p"] == _step(act["p"], period, -1), "returning", "resurrecting"))
    act["status"] = status
    shown = act[act["p"] >= pd.Timestamp(first)]
    counts = shown.groupby(["p", "status"]).size().unstack(fill_value=0)
    gone = _step(act["p"], period, 1)
    dormant = act.loc[(act["next_p"].isna() | (act["next_p"] != gone)) & (gone >= pd.Timestamp(first))
                      & (gone < end)]
    dormant_counts = _step(dormant["p"], period, 1).value_counts()
    idx = pd.DatetimeIndex(_period_index(first, last, period))
    out = pd.DataFrame(index=idx)
    for s in ("new", "returning", "resurrecting"):
        out[s] = counts[s].reindex(idx, fill_value=0).astype("int64") if s in counts else 0
    out["dormant"] = -dormant_counts.reindex(idx, fill_value=0).astype("int64")
    out.index = [p.date() for p in idx]
    out.index.name = "period_start"
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# Shared pulls
# --------------------------------------------------------------------------------------------

def events(src: Source, event: str, *, since: date | datetime | None = None,
           until: date | datetime | None = None) -> pd.DataFrame:
    """trader_id, occurred_at of one event of the unified stream (the trader_events view)."""
    where = [f"event = '{event}'"]
    if since is not None:
        where.append(f"occurred_at >= {_lit(since)}")
    if until is not None:
        where.append(f"occurred_at < {_lit(until)}")
    return src.read(f"SELECT trader_id, occurred_at FROM trader_events WHERE {' AND '.join(where)}")


def trading_days(src: Source, *, since: date | datetime | None = None,
                 until: date | datetime | None = None) -> pd.DataFrame:
    """trader_id, occurred_at (a UTC midnight): every day a trader opened, closed or held a position
    (analytics.events.activity_select), each position expanded to the days from its opening to its close."""
    where = ["TRUE"]
    if since is not None:
        where.append(f"closed_at >= {_lit(since)}")
    if until is not None:
        where.append(f"opened_at < {_lit(until)}")
    trd = src.read(f"SELECT trader_id, opened_at, closed_at FROM trades WHERE {' AND '.join(where)}")
    first, last = trd["opened_at"].dt.normalize(), trd["closed_at"].dt.normalize()
    lengths = (last - first).dt.days.to_numpy() + 1
    which = np.repeat(np.arange(len(trd)), lengths)
    step = np.arange(len(which)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    days = pd.DataFrame({"trader_id": trd["trader_id"].to_numpy()[which],
                         "occurred_at": first.to_numpy()[which] + step.astype("timedelta64[D]")})
    if since is not None:
        days = days[days["occurred_at"] >= _ts(since)]
    if until is not None:
        days = days[days["occurred_at"] < _ts(until)]
    return days.drop_duplicates().reset_index(drop=True)


def activity(src: Source, event: str, *, since: date | datetime | None = None,
             until: date | datetime | None = None) -> pd.DataFrame:
    """What "did the trader do ``event`` in period P" reads: :func:`trading_days` for trade, else the events."""
    if event == "trade":
        return trading_days(src, since=since, until=until)
    return events(src, event, since=since, until=until)


def ledger(src: Source) -> pd.DataFrame:
    """The whole payment ledger (it is small next to trades): kind, status, USD amount, time."""
    return src.read("SELECT trader_id, kind, status, CAST(amount_usd AS DOUBLE) AS amount_usd, created_at "
                    "FROM transactions")


def ftd_times(tx: pd.DataFrame) -> pd.Series:
    """Each trader's FTD time (index trader_id): the first deposit approved when it was made, even if
    reversed or charged back since."""
    dep = tx[(tx["kind"] == "deposit") & tx["status"].isin(("approved", "reversed", "chargeback"))]
    return dep.groupby("trader_id")["created_at"].min()


def _days(n: int) -> pd.Timedelta:
    return pd.Timedelta(days=n)


def _periods_of(date_range, period: str) -> list[pd.Timestamp]:
    first = _floor_date(date_range.start, period)
    return _period_index(first, date_range.end, period)


# --------------------------------------------------------------------------------------------
# KPIs (analytics.kpis)
# --------------------------------------------------------------------------------------------

def kpis(src: Source, *, date_range, trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> dict[str, tuple]:
    """{key: (value, previous)} for the KPIs of analytics.kpis.compute_kpis, from raw rows."""
    periods = {"cur": date_range, "prev": date_range.previous()}
    keep = kept_traders(src, trader_filter)
    tr = src.read("SELECT trader_id, registered_at, kyc_approved_at FROM traders")
    tr = tr[tr["trader_id"].isin(keep)].set_index("trader_id")
    tx = ledger(src)
    ftd = ftd_times(tx)
    first_ts = min(r.start for r in periods.values())
    until = max(r.end for r in periods.values()) + timedelta(days=1)
    open_from = first_ts - timedelta(days=30)
    close_from = min(min(r.start - timedelta(days=30), r.end - timedelta(days=364)) for r in periods.values())
    trd = src.read(
        "SELECT trader_id, opened_at, closed_at, CAST(lots AS DOUBLE) AS lots, "
        "CAST(notional_usd AS DOUBLE) AS notional, CAST(profit_usd AS DOUBLE) AS profit, "
        "CAST(commission_usd AS DOUBLE) AS commission, CAST(swap_usd AS DOUBLE) AS swap FROM trades "
        # Every position open at some moment of the windows: opened, closed or held in them.
        f"WHERE opened_at < {_lit(until)} AND closed_at >= {_lit(min(open_from, close_from))}")
    data_end = max(tr_all_max(src, tx), trd["opened_at"].max())
    recent_from = min(r.end for r in periods.values()) + timedelta(days=1) - timedelta(days=30)
    logins = events(src, "login", since=recent_from, until=until)
    trd = trd[trd["trader_id"].isin(keep)]
    trd["pnl"] = trd["profit"] + trd["commission"] + trd["swap"]
    trd["costed"] = ((trd["commission"] != 0) | (trd["swap"] != 0)).astype(int)
    opened = trd[(trd["opened_at"] >= _ts(open_from)) & (trd["opened_at"] < _ts(until))]
    closed = trd[(trd["closed_at"] >= _ts(close_from)) & (trd["closed_at"] < _ts(until))]
    open_days = pd.DataFrame({"trader_id": opened["trader_id"], "d": opened["opened_at"].dt.normalize()})
    close_rows = pd.DataFrame({"trader_id": closed["trader_id"], "d": closed["closed_at"].dt.normalize(),
                               **{c: closed[c] for c in ("lots", "notional", "pnl", "commission", "swap", "costed")}})
    close_rows["closed"] = 1
    # Trading is opening, closing or holding a position: the days strictly between its opening day and
    # its closing day are trading days too.
    first_held, last_held = trd["opened_at"].dt.normalize() + _days(1), trd["closed_at"].dt.normalize() - _days(1)
    lengths = np.maximum((last_held - first_held).dt.days.to_numpy() + 1, 0)
    which = np.repeat(np.arange(len(trd)), lengths)
    step = np.arange(len(which)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    held_days = pd.DataFrame({"trader_id": trd["trader_id"].to_numpy()[which],
                              "d": first_held.to_numpy()[which] + step.astype("timedelta64[D]")})
    held_days = held_days[(held_days["d"] >= _ts(open_from)) & (held_days["d"] < _ts(until))]
    trader_days = pd.concat([open_days, close_rows, held_days], ignore_index=True)
    trader_days = trader_days.groupby(["trader_id", "d"], as_index=False).sum(min_count=0)
    out: dict[str, dict] = {}
    # Approved deposits within 30 days of the FTD, and the FTD itself even when taken back since.
    dep = tx[(tx["kind"] == "deposit") & tx["status"].isin(("approved", "reversed", "chargeback"))].merge(
        ftd.rename("ftd_at"), left_on="trader_id", right_index=True)
    dep = dep[(dep["status"] == "approved") | (dep["created_at"] == dep["ftd_at"])]
    deposits_30d = dep[dep["created_at"] <= dep["ftd_at"] + _days(30)].groupby("trader_id").size()
    # The FTD's amount when it was reversed or charged back since (it stays the FTD).
    firsts = dep.sort_values(["trader_id", "created_at"], kind="stable").groupby("trader_id").head(1)
    firsts = firsts.set_index("trader_id")
    taken_back = firsts["amount_usd"].where(firsts["status"] != "approved")
    people = (tr.join(ftd.rename("ftd_at")).join(deposits_30d.rename("deposits_30d"))
              .join(taken_back.rename("taken_back_usd")))
    approved = tx[(tx["status"] == "approved") & tx["trader_id"].isin(keep)]
    dep_after = tx[(tx["kind"] == "deposit") & (tx["status"] == "approved")]
    for name, rng in periods.items():
        lo, hi = _ts(rng.start), _ts(rng.end + timedelta(days=1))
        reg, ftd_at = people["registered_at"], people["ftd_at"]
        in_reg = (reg >= lo) & (reg < hi)
        in_ftd = (ftd_at >= lo) & (ftd_at < hi)
        v: dict = {"registrations": float(in_reg.sum()),
                   "kyc_approvals": float(((people["kyc_approved_at"] >= lo) & (people["kyc_approved_at"] < hi)).sum()),
                   "ftds": float(in_ftd.sum()),
                   "ftds_charged_back": float((in_ftd & people["taken_back_usd"].notna()).sum()),
                   "ftds_charged_back_usd": round(float(people.loc[in_ftd, "taken_back_usd"].sum()), 2)}
        for w in (7, 30):
            mature = in_reg & (reg <= data_end - _days(w))
            conv = mature & (ftd_at <= reg + _days(w))
            v[f"ftd_conversion_{w}d"] = conv.sum() / mature.sum() if mature.sum() else None
        ttf = ((ftd_at - reg).dt.total_seconds())[in_ftd].dropna()
        v["time_to_ftd"] = float(ttf.median()) / 3600 if len(ttf) else None
        money = approved[(approved["created_at"] >= lo) & (approved["created_at"] < hi)]
        amount = money["amount_usd"].abs()
        sums = amount.groupby(money["kind"]).sum()
        deposits, withdrawals = float(sums.get("deposit", 0.0)), float(sums.get("withdrawal", 0.0))
        depositors = float(money.loc[money["kind"] == "deposit", "trader_id"].nunique())
        v |= {"deposits": deposits, "withdrawals": withdrawals, "net_deposits": deposits - withdrawals,
              "depositors": depositors, "avg_deposit": deposits / depositors if depositors else None}
        ftd_mature = in_ftd & (ftd_at <= data_end - _days(30))
        redeposited = ftd_mature & (people["deposits_30d"] >= 2)
        v["redeposit_rate"] = redeposited.sum() / ftd_mature.sum() if ftd_mature.sum() else None
        d = trader_days
        in_rng = (d["d"] >= lo) & (d["d"] < hi)
        end_day = _ts(rng.end)
        esma = (d["d"] >= end_day - _days(364)) & (d["d"] <= end_day)
        wau = (d["d"] >= end_day - _days(6)) & (d["d"] <= end_day)
        mau = (d["d"] >= end_day - _days(29)) & (d["d"] <= end_day)
        before = (d["d"] >= lo - _days(30)) & (d["d"] <= lo - _days(1))
        sums = d[in_rng][["closed", "lots", "notional", "pnl", "commission", "swap", "costed"]].sum()
        per_trader = pd.DataFrame({"active": in_rng, "wau": wau, "mau": mau, "before": before,
                                   "pnl12": d["pnl"].where(esma, 0.0), "closed12": d["closed"].where(esma, 0),
                                   "trader_id": d["trader_id"]}).groupby("trader_id").agg(
            active=("active", "max"), wau=("wau", "max"), mau=("mau", "max"), before=("before", "max"),
            pnl12=("pnl12", "sum"), closed12=("closed12", "sum"))
        recent_lo = _ts(rng.end + timedelta(days=1)) - _days(30)
        recent_ids = set(logins.loc[(logins["occurred_at"] >= recent_lo) & (logins["occurred_at"] < hi), "trader_id"]
                         ) if "login" in churn_activity().events else set()
        recent_dep = dep_after[(dep_after["created_at"] >= recent_lo) & (dep_after["created_at"] < hi)]
        recent_ids |= set(recent_dep["trader_id"])
        traded12 = per_trader["closed12"] > 0
        churned = per_trader["before"] & ~per_trader["mau"] & ~per_trader.index.isin(list(recent_ids))
        bonus = approved[(approved["created_at"] >= lo) & (approved["created_at"] < hi)]
        bonuses = bonus.loc[bonus["kind"] == "bonus", "amount_usd"].abs().sum() - \
            bonus.loc[bonus["kind"] == "bonus_cancel", "amount_usd"].abs().sum()
        v |= {"active_traders": float(per_trader["active"].sum()),
              "dau": float(in_rng.sum()) / rng.days, "wau": float(per_trader["wau"].sum()),
              "mau": float(per_trader["mau"].sum()), "trades": float(sums["closed"]),
              "volume_usd": float(sums["notional"]),
              "client_pnl": float(sums["pnl"]),
              "broker_revenue": (-float(sums["commission"]) - float(sums["swap"]) - float(bonuses))
              if sums["costed"] else None,
              "esma_loss_share": ((traded12 & (per_trader["pnl12"] < 0)).sum() / traded12.sum()
                                  if traded12.sum() else None),
              "churn_rate": churned.sum() / per_trader["before"].sum() if per_trader["before"].sum() else None}
        out[name] = v
    return {k: (out["cur"][k], out["prev"][k]) for k in out["cur"]}


def tr_all_max(src: Source, tx: pd.DataFrame) -> pd.Timestamp:
    """Newest registration or transaction (the trades' newest opening is added by the caller)."""
    reg = src.read("SELECT registered_at FROM traders WHERE registered_at IS NOT NULL")["registered_at"].max()
    return max(reg, tx["created_at"].max())


def kpi_trend(src: Source, *, metric: str, date_range, period: str,
              trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """period_start, value: the metrics the Overview charts (registrations, net_deposits,
    active_traders, volume_usd) per period, as analytics.kpis.compute_kpi_trend."""
    keep = kept_traders(src, trader_filter)
    lo, hi = date_range.start_ts, date_range.end_ts
    if metric == "registrations":
        rows = src.read(f"SELECT trader_id, registered_at AS at FROM traders WHERE registered_at >= {_lit(lo)} "
                        f"AND registered_at < {_lit(hi)}")
        rows = rows[rows["trader_id"].isin(keep)]
        values = rows.groupby(floor_period(rows["at"], period)).size().astype("float64")
    elif metric == "net_deposits":
        rows = src.read("SELECT trader_id, kind, CAST(amount_usd AS DOUBLE) AS amount, created_at AS at "
                        f"FROM transactions WHERE status = 'approved' AND created_at >= {_lit(lo)} "
                        f"AND created_at < {_lit(hi)}")
        rows = rows[rows["trader_id"].isin(keep) & rows["kind"].isin(["deposit", "withdrawal"])]
        signed = rows["amount"].abs().where(rows["kind"] == "deposit", -rows["amount"].abs())
        values = signed.groupby(floor_period(rows["at"], period)).sum()
    elif metric == "active_traders":
        both = trading_days(src, since=lo, until=hi).rename(columns={"occurred_at": "at"})
        both = both[both["trader_id"].isin(keep)]
        values = both.groupby(floor_period(both["at"], period))["trader_id"].nunique().astype("float64")
    elif metric == "volume_usd":
        rows = src.read("SELECT trader_id, CAST(notional_usd AS DOUBLE) AS notional, closed_at AS at FROM trades "
                        f"WHERE closed_at >= {_lit(lo)} AND closed_at < {_lit(hi)}")
        rows = rows[rows["trader_id"].isin(keep)]
        values = rows.groupby(floor_period(rows["at"], period))["notional"].sum()
    else:
        raise ValueError(f"no naive version of trend metric {metric!r}")
    starts = _periods_of(date_range, period)
    return pd.DataFrame({"period_start": pd.to_datetime(pd.Series(starts, dtype="datetime64[us]")),
                         "value": [float(values.get(s, 0.0)) for s in starts]})


def breakdown(src: Source, *, dimension: str, date_range, trader_filter: TraderFilter = EVERYONE_BUT_TEST,
              top: int = 10) -> pd.DataFrame:
    """Headline figures per country (or another traders column), top by deposits plus "Other",
    as analytics.kpis.compute_breakdown."""
    keep = kept_traders(src, trader_filter)
    tr = src.read(f"SELECT trader_id, registered_at, {dimension} AS value FROM traders")
    tr = tr[tr["trader_id"].isin(keep)].set_index("trader_id")
    tr["value"] = tr["value"].fillna("Unknown").astype(str)
    tx = ledger(src)
    lo, hi = _ts(date_range.start_ts), _ts(date_range.end_ts)
    trd = src.read("SELECT trader_id, opened_at, closed_at, CAST(notional_usd AS DOUBLE) AS notional FROM trades "
                   f"WHERE (opened_at >= {_lit(lo)} AND opened_at < {_lit(hi)}) "
                   f"OR (closed_at >= {_lit(lo)} AND closed_at < {_lit(hi)})")
    data_end = max(tr_all_max(src, tx), trd["opened_at"].max())
    ftd_at = ftd_times(tx).reindex(tr.index)
    reg = tr["registered_at"]
    in_reg = (reg >= lo) & (reg < hi)
    mature = in_reg & (reg <= data_end - _days(7))
    money = tx[(tx["status"] == "approved") & (tx["created_at"] >= lo) & (tx["created_at"] < hi)]
    per_trader = money.assign(usd=money["amount_usd"].abs()).pivot_table(
        index="trader_id", columns="kind", values="usd", aggfunc="sum")
    closed_in = (trd["closed_at"] >= lo) & (trd["closed_at"] < hi)
    volume = trd["notional"].where(closed_in).groupby(trd["trader_id"]).sum(min_count=1)
    frame = pd.DataFrame({
        "value": tr["value"], "registrations": in_reg, "ftds": (ftd_at >= lo) & (ftd_at < hi),
        "cohort_registrations": mature, "cohort_ftds": mature & (ftd_at <= reg + _days(7)),
        "deposits": per_trader.get("deposit", pd.Series(dtype=float)).reindex(tr.index),
        "withdrawals": per_trader.get("withdrawal", pd.Series(dtype=float)).reindex(tr.index),
        "active_traders": tr.index.isin(trading_days(src, since=lo, until=hi)["trader_id"]),
        "volume_usd": volume.reindex(tr.index)})
    frame = frame.groupby("value", as_index=False).sum(min_count=0)
    numeric = [c for c in frame.columns if c != "value"]
    frame[numeric] = frame[numeric].astype("float64").fillna(0.0)
    frame["net_deposits"] = frame["deposits"] - frame["withdrawals"]
    frame = frame[(frame[numeric] != 0).any(axis=1)]
    frame = frame.sort_values(["deposits", "registrations", "value"], ascending=[False, False, True], kind="stable")
    if len(frame) > top:
        rest = frame.iloc[top:][[*numeric, "net_deposits"]].sum()
        frame = pd.concat([frame.iloc[:top], pd.DataFrame([{"value": "Other", **rest.to_dict()}])], ignore_index=True)
    frame = frame.reset_index(drop=True)
    frame["ftd_conversion"] = frame["cohort_ftds"] / frame["cohort_registrations"].where(
        frame["cohort_registrations"] > 0)
    return frame[["value", "registrations", "ftds", "cohort_registrations", "cohort_ftds", "ftd_conversion",
                  "deposits", "withdrawals", "net_deposits", "active_traders", "volume_usd"]]


def volume_by_asset_class(src: Source, *, date_range, trader_filter: TraderFilter = EVERYONE_BUT_TEST
                          ) -> pd.DataFrame:
    keep = kept_traders(src, trader_filter)
    trd = src.read("SELECT trader_id, asset_class, CAST(lots AS DOUBLE) AS lots, "
                   "CAST(notional_usd AS DOUBLE) AS notional_usd, "
                   "CAST(profit_usd + commission_usd + swap_usd AS DOUBLE) AS client_pnl FROM trades "
                   f"WHERE closed_at >= {_lit(date_range.start_ts)} AND closed_at < {_lit(date_range.end_ts)}")
    trd = trd[trd["trader_id"].isin(keep)]
    trd["asset_class"] = trd["asset_class"].fillna("other").astype(str)
    out = trd.groupby("asset_class", as_index=False).agg(
        trades=("trader_id", "size"), lots=("lots", "sum"), notional_usd=("notional_usd", "sum"),
        client_pnl=("client_pnl", "sum"))
    return out.sort_values(["notional_usd", "asset_class"], ascending=[False, True], kind="stable",
                           ignore_index=True)


# --------------------------------------------------------------------------------------------
# Cohorts (analytics.cohorts)
# --------------------------------------------------------------------------------------------

WEEK_ORIGIN = pd.Timestamp("1969-12-29")  # a Monday


def week_index(ts: pd.Series) -> pd.Series:
    return (ts.dt.normalize() - WEEK_ORIGIN).dt.days // 7


def retention(src: Source, *, start_event: str, return_event: str, period: str, intervals: int, date_to: date,
              trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """Recurring weekly retention counts (cohort_start, size, 0 … intervals-1) without date_from:
    ``intervals`` cohorts ending with date_to's week, as analytics.cohorts.compute_retention."""
    assert period == "week"
    n = intervals
    last = (pd.Timestamp(date_to) - WEEK_ORIGIN).days // 7
    first = last - n + 1
    lo, hi = WEEK_ORIGIN + pd.Timedelta(weeks=first), WEEK_ORIGIN + pd.Timedelta(weeks=last + 1)
    keep = kept_traders(src, trader_filter)
    starts = activity(src, start_event, since=lo.to_pydatetime(), until=hi.to_pydatetime())
    starts = starts[starts["trader_id"].isin(keep)]
    starts = pd.DataFrame({"trader_id": starts["trader_id"], "cohort": week_index(starts["occurred_at"])})
    starts = starts.drop_duplicates()
    rets = activity(src, return_event, since=(lo + pd.Timedelta(weeks=1)).to_pydatetime(), until=hi.to_pydatetime())
    rets = pd.DataFrame({"trader_id": rets["trader_id"], "p": week_index(rets["occurred_at"])}).drop_duplicates()
    pairs = starts.merge(rets, on="trader_id")
    pairs = pairs[(pairs["p"] > pairs["cohort"]) & (pairs["p"] < pairs["cohort"] + n)]
    cells = pairs.groupby(["cohort", pairs["p"] - pairs["cohort"]]).size()
    matrix = np.zeros((last - first + 1, n), dtype=np.int64)
    for c, size in starts.groupby("cohort").size().items():
        matrix[c - first, 0] = size
    for (c, k), count in cells.items():
        matrix[c - first, k] = count
    counts = pd.DataFrame(matrix, columns=list(range(n)))
    counts.insert(0, "size", matrix[:, 0].copy())
    counts.insert(0, "cohort_start", pd.to_datetime([WEEK_ORIGIN + pd.Timedelta(weeks=first + i)
                                                     for i in range(last - first + 1)]))
    return counts


def ltv(src: Source, *, period: str, ages: int, metric: str, date_from: date, date_to: date,
        trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """Cumulative net deposits per trader by weeks since FTD, per weekly FTD cohort and pooled,
    as analytics.cohorts.compute_ltv (age unit = 7 days)."""
    assert period == "week" and metric == "net_deposits"
    unit = pd.Timedelta(days=7)
    keep = kept_traders(src, trader_filter)
    tx = ledger(src)
    tx = tx[tx["trader_id"].isin(keep)]
    obs_end = pd.Timestamp(date_to) + _days(1)
    lo = pd.Timestamp(_floor_date(date_from, "week"))
    ftd = ftd_times(tx)
    ftd = ftd[(ftd >= lo) & (ftd < obs_end)].rename("ftd_at")
    cohort = week_index(ftd)
    sizes = cohort.value_counts()
    money = tx[(tx["status"] == "approved") & tx["kind"].isin(["deposit", "withdrawal"])].merge(
        ftd, left_on="trader_id", right_index=True)
    money = money[(money["created_at"] >= money["ftd_at"]) & (money["created_at"] < obs_end)
                  & (money["created_at"] < money["ftd_at"] + unit * ages)]
    money["usd"] = money["amount_usd"].where(money["kind"] != "withdrawal", -money["amount_usd"].abs())
    money["age"] = ((money["created_at"] - money["ftd_at"]) // unit).astype(int)
    money["cohort"] = money["trader_id"].map(cohort)
    totals = money.groupby(["cohort", "age"])["usd"].sum()
    records = []
    pooled_size = np.zeros(ages, dtype=np.int64)
    pooled_value = np.zeros(ages)
    for c in sorted(sizes.index):
        start = WEEK_ORIGIN + pd.Timedelta(weeks=int(c))
        members_until = min(start + unit, obs_end)
        value = 0.0
        for a in range(ages):
            if members_until + unit * (a + 1) > obs_end:
                break
            value += float(totals.get((c, a), 0.0))
            size = int(sizes[c])
            records.append({"cohort": start.date().isoformat(), "cohort_start": start, "cohort_size": size, "age": a,
                            "value_usd": value, "value_per_trader": value / size})
            pooled_size[a] += size
            pooled_value[a] += value
    for a in range(ages):
        if pooled_size[a]:
            records.append({"cohort": "All cohorts", "cohort_start": pd.NaT, "cohort_size": int(pooled_size[a]),
                            "age": a, "value_usd": pooled_value[a],
                            "value_per_trader": pooled_value[a] / pooled_size[a]})
    return pd.DataFrame.from_records(records)


def engagement_retention(src: Source, *, date_to: date, threshold: int = 10, first_days: int = 30,
                         retained_from_day: int = 90, retained_to_day: int = 120,
                         trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> dict:
    """Traders per early-login bucket and retention 90-120 days after FTD, as
    analytics.cohorts.compute_engagement_retention: {"buckets": frame, "n_high", "n_low",
    "retained_high", "retained_low"}."""
    keep = kept_traders(src, trader_filter)
    tx = ledger(src)
    tx = tx[tx["trader_id"].isin(keep)]
    cutoff = pd.Timestamp(date_to) + _days(1) - _days(retained_to_day)
    ftd = ftd_times(tx)
    ftd = ftd[ftd <= cutoff].rename("ftd_at")
    logins = events(src, "login", until=(cutoff + _days(first_days)).to_pydatetime())
    early = logins.merge(ftd, left_on="trader_id", right_index=True)
    early = early[(early["occurred_at"] >= early["ftd_at"])
                  & (early["occurred_at"] < early["ftd_at"] + _days(first_days))]
    sessions = early.groupby("trader_id").size().reindex(ftd.index, fill_value=0)
    # Trading in the window: a position opened, closed or held in it.
    trades = src.read("SELECT trader_id, opened_at, closed_at FROM trades "
                      f"WHERE opened_at < {_lit((cutoff + _days(retained_to_day)).to_pydatetime())}")
    late = trades.merge(ftd, left_on="trader_id", right_index=True)
    late = late[(late["closed_at"] >= late["ftd_at"] + _days(retained_from_day))
                & (late["opened_at"] < late["ftd_at"] + _days(retained_to_day))]
    retained = ftd.index.isin(late["trader_id"].unique())
    per = pd.DataFrame({"sessions": sessions.to_numpy(), "retained": retained})
    edges = sorted({0, threshold, 3, 6, 10, 20})
    rows = []
    for i, low in enumerate(edges):
        high = edges[i + 1] - 1 if i + 1 < len(edges) else None
        sel = per[(per["sessions"] >= low) & ((per["sessions"] <= high) if high is not None else True)]
        rows.append({"traders": len(sel), "retained": int(sel["retained"].sum())})
    hi_grp, lo_grp = per[per["sessions"] >= threshold], per[per["sessions"] < threshold]
    return {"buckets": pd.DataFrame(rows), "n_high": len(hi_grp), "n_low": len(lo_grp),
            "retained_high": int(hi_grp["retained"].sum()), "retained_low": int(lo_grp["retained"].sum())}


# --------------------------------------------------------------------------------------------
# Funnels (analytics.funnels)
# --------------------------------------------------------------------------------------------

def _funnel_events(src: Source, steps, date_range, trader_filter: TraderFilter, *, every_event: bool = False
                   ) -> pd.DataFrame:
    keep = kept_traders(src, trader_filter)
    names = "" if every_event else f"event IN {_in(steps)} AND "
    ev = src.read(f"SELECT trader_id, event, occurred_at FROM trader_events WHERE {names}"
                  f"occurred_at >= {_lit(date_range.start_ts)} AND occurred_at < {_lit(date_range.end_ts)}")
    return ev[ev["trader_id"].isin(keep)]


def _ordered_attempts(ev: pd.DataFrame, steps, window_s: int) -> pd.DataFrame:
    """One row per step-1 event (an attempt) with the time of each later step reached, greedily:
    the first step-k event at or after the step-(k-1) event, within the window of the entry.

    Exact for funnels whose steps are distinct events and whose step 1 happens once per trader
    (registered, ftd); with a repeated step 1 the counts stay exact (the furthest step of any
    attempt) and conversion times use the latest entry before the conversion (see funnel())."""
    window = pd.Timedelta(seconds=window_s)
    att = ev.loc[ev["event"] == steps[0], ["trader_id", "occurred_at"]].rename(columns={"occurred_at": "t1"})
    att = att.reset_index(drop=True)
    att["t_prev"] = att["t1"]
    for k, name in enumerate(steps[1:], start=2):
        nxt = ev.loc[ev["event"] == name, ["trader_id", "occurred_at"]].rename(columns={"occurred_at": f"t{k}"})
        live = att[att["t_prev"].notna()].sort_values("t_prev")
        found = pd.merge_asof(live, nxt.sort_values(f"t{k}"), left_on="t_prev", right_on=f"t{k}", by="trader_id",
                              direction="forward", allow_exact_matches=True)
        found.index = live.index
        ok = found[f"t{k}"] <= found["t1"] + window
        att[f"t{k}"] = found[f"t{k}"].where(ok).reindex(att.index)
        att["t_prev"] = att[f"t{k}"]
    times = att[[f"t{k}" for k in range(1, len(steps) + 1)]]
    att["reached"] = times.notna().cumprod(axis=1).sum(axis=1)
    return att


def _best_attempts(att: pd.DataFrame) -> pd.DataFrame:
    """Per trader the attempt that got furthest, the first such (earliest entry)."""
    return att.sort_values(["trader_id", "reached", "t1"], ascending=[True, False, True]).drop_duplicates("trader_id")


def funnel(src: Source, *, steps, window_s: int, date_range, trader_filter: TraderFilter = EVERYONE_BUT_TEST,
           order: str = "ordered") -> pd.DataFrame:
    """step, event, count, conversion_rate (+ mean and median seconds from the previous step for
    ordered funnels) like FunnelResult.steps.

    ordered: exact for distinct steps (see _ordered_attempts); for a two-step funnel with a repeated
    step 1 the time to convert is taken from the latest step-1 event before the first converting
    step-2 event (PostHog's "latest start wins"). strict (simplified): a step-1 event converts when
    the trader's next event in the stream (ties ordered by step) is step 2 within the window.
    unordered (simplified): the most distinct steps whose first occurrences fit in one window."""
    n = len(steps)
    window = pd.Timedelta(seconds=window_s)
    times: list[pd.Series] = []
    if order == "ordered":
        ev = _funnel_events(src, steps, date_range, trader_filter)
        if n == 2:
            pv = ev.loc[ev["event"] == steps[0], ["trader_id", "occurred_at"]].rename(columns={"occurred_at": "t1"})
            dep = ev.loc[ev["event"] == steps[1], ["trader_id", "occurred_at"]].rename(columns={"occurred_at": "t2"})
            pairs = pd.merge_asof(dep.sort_values("t2"), pv.sort_values("t1"), left_on="t2", right_on="t1",
                                  by="trader_id", direction="backward", allow_exact_matches=True)
            pairs = pairs[pairs["t1"].notna() & (pairs["t2"] - pairs["t1"] <= window)]
            first = pairs.sort_values(["trader_id", "t2"]).drop_duplicates("trader_id")
            counts = [pv["trader_id"].nunique(), len(first)]
            times = [pd.Series(dtype=float), (first["t2"] - first["t1"]).dt.total_seconds()]
        else:
            best = _best_attempts(_ordered_attempts(ev, steps, window_s))
            counts = [int((best["reached"] >= k).sum()) for k in range(1, n + 1)]
            times = [pd.Series(dtype=float)] + [
                (best.loc[best["reached"] >= k, f"t{k}"] - best.loc[best["reached"] >= k, f"t{k - 1}"]
                 ).dt.total_seconds() for k in range(2, n + 1)]
    elif order == "strict":
        ev = _funnel_events(src, steps, date_range, trader_filter, every_event=True)
        rank = ev["event"].map({s: i for i, s in enumerate(steps)}).fillna(len(steps))
        ev = ev.assign(rank=rank).sort_values(["trader_id", "occurred_at", "rank"], kind="stable")
        nxt_event = ev["event"].shift(-1)
        nxt_time = ev["occurred_at"].shift(-1)
        same = ev["trader_id"].shift(-1) == ev["trader_id"]
        entry = ev["event"] == steps[0]
        conv = entry & same & (nxt_event == steps[1]) & (nxt_time - ev["occurred_at"] <= window)
        counts = [ev.loc[entry, "trader_id"].nunique(), ev.loc[conv, "trader_id"].nunique()]
    else:
        ev = _funnel_events(src, steps, date_range, trader_filter)
        first = ev.groupby(["trader_id", "event"])["occurred_at"].min().unstack()
        t = np.sort(first.reindex(columns=list(steps)).to_numpy("datetime64[us]").astype("int64"), axis=1)
        t = np.where(np.isnat(np.sort(first.reindex(columns=list(steps)).to_numpy("datetime64[us]"), axis=1)),
                     np.iinfo(np.int64).max, t)
        w = window_s * 1_000_000
        best = np.zeros(len(t), dtype=int)
        for i in range(n):
            valid = t[:, i] != np.iinfo(np.int64).max
            within = ((t >= t[:, [i]]) & (t - t[:, [i]] <= w) & (t != np.iinfo(np.int64).max)).sum(axis=1)
            best = np.maximum(best, np.where(valid, within, 0))
        counts = [int((best >= k).sum()) for k in range(1, n + 1)]
    frame = pd.DataFrame({"step": range(1, n + 1), "count": counts})
    frame["conversion_rate"] = frame["count"] / frame["count"].iloc[0] if counts[0] else 0.0
    if times:
        positive = [s[s > 0] for s in times]
        frame["average_time_to_convert_s"] = [s.mean() if i and len(s) else np.nan for i, s in enumerate(positive)]
        frame["median_time_to_convert_s"] = [s.median() if i and len(s) else np.nan for i, s in enumerate(positive)]
    return frame


def funnel_trends(src: Source, *, steps, window_s: int, period: str, date_range,
                  trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """Entered and converted traders per entry week (ordered funnel whose step 1 happens once per
    trader, as registered does; a trader counts once per period)."""
    ev = _funnel_events(src, steps, date_range, trader_filter)
    att = _ordered_attempts(ev, steps, window_s)
    att["p"] = floor_period(att["t1"], period)
    per = att.groupby(["p", "trader_id"])["reached"].max().reset_index()
    entered = per.groupby("p").size()
    done = per[per["reached"] >= len(steps)].groupby("p").size()
    starts = _periods_of(date_range, period)
    frame = pd.DataFrame({"period_start": pd.to_datetime(starts),
                          "reached_from_step_count": [int(entered.get(s, 0)) for s in starts],
                          "reached_to_step_count": [int(done.get(s, 0)) for s in starts]})
    frame["conversion_rate"] = np.where(frame["reached_from_step_count"] > 0,
                                        frame["reached_to_step_count"] / frame["reached_from_step_count"].clip(lower=1),
                                        0.0)
    return frame


def time_to_convert(src: Source, *, steps, window_s: int, date_range, trader_filter: TraderFilter = EVERYONE_BUT_TEST,
                    bins: int = 30) -> pd.DataFrame:
    """Histogram of step-1 → last-step seconds (equal-width bins from the fastest to the slowest)."""
    best = _best_attempts(_ordered_attempts(_funnel_events(src, steps, date_range, trader_filter), steps, window_s))
    done = best[best["reached"] >= len(steps)]
    seconds = ((done[f"t{len(steps)}"] - done["t1"]).dt.total_seconds()).to_numpy()
    low, high = float(np.floor(seconds.min())), float(np.ceil(seconds.max()))
    width = float(np.ceil((high - low) / bins)) or 60.0
    index = np.minimum(((seconds - low) // width).astype(np.int64), bins - 1)
    starts = low + width * np.arange(bins)
    frame = pd.DataFrame({"bin_start_s": starts, "bin_end_s": starts + width,
                          "traders": np.bincount(index, minlength=bins).astype(np.int64)})
    frame.attrs.update({"traders": len(seconds), "average_s": float(seconds.mean()),
                        "median_s": float(np.median(seconds))})
    return frame


def dropoffs(src: Source, *, steps, window_s: int, step: int, date_range,
             trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """trader_id, reached_at of the traders whose furthest step is ``step`` (1-based), newest first."""
    best = _best_attempts(_ordered_attempts(_funnel_events(src, steps, date_range, trader_filter), steps, window_s))
    out = best.loc[best["reached"] == step, ["trader_id", f"t{step}"]].rename(columns={f"t{step}": "reached_at"})
    return out.sort_values(["reached_at", "trader_id"], ascending=[False, True], ignore_index=True)


# --------------------------------------------------------------------------------------------
# Lifecycle stages (analytics.lifecycle)
# --------------------------------------------------------------------------------------------

STAGES = ("lead", "registered", "kyc_approved", "ftd", "active", "dormant", "churned", "reactivated")
ACTIVE_WINDOW_DAYS = 30


def _activity(src: Source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every trade (open to close), approved deposit and login as (trader_id, start, stop, trade)."""
    trd = src.read("SELECT trader_id, opened_at, closed_at FROM trades")
    dep = src.read("SELECT trader_id, created_at FROM transactions WHERE kind = 'deposit' AND status = 'approved'")
    log = src.read("SELECT trader_id, started_at FROM sessions")
    trades_ = pd.DataFrame({"trader_id": trd["trader_id"], "start": trd["opened_at"],
                            "stop": trd[["opened_at", "closed_at"]].max(axis=1)})
    instants = pd.concat([
        pd.DataFrame({"trader_id": dep["trader_id"], "start": dep["created_at"], "kind": "deposit"}),
        pd.DataFrame({"trader_id": log["trader_id"], "start": log["started_at"], "kind": "login"})],
        ignore_index=True)
    return trades_, instants


def _stages_on(days: list[date], src: Source, dormant_days: int, churn_days: int,
               trader_filter: TraderFilter) -> pd.DataFrame:
    keep = kept_traders(src, trader_filter)
    tr = src.read("SELECT trader_id, lead_at, registered_at, kyc_approved_at, vip_tier FROM traders")
    tr = tr[tr["trader_id"].isin(keep)].set_index("trader_id")
    trades_, instants = _activity(src)
    instants = instants.assign(stop=instants["start"])
    # Every event captures a trader; trading and the churn activity setting's events keep one alive.
    alive = instants["kind"].isin(churn_activity().events)
    both = pd.concat([trades_.assign(trade=True, alive=True),
                      instants.drop(columns="kind").assign(trade=False, alive=alive)], ignore_index=True)
    first_trade = trades_.groupby("trader_id")["start"].min().reindex(tr.index)
    first_deposit = instants[instants["kind"] == "deposit"].groupby("trader_id")["start"].min().reindex(tr.index)
    first_any = both.groupby("trader_id")["start"].min().reindex(tr.index)
    both = both[both["alive"]]
    out = pd.DataFrame({"is_vip": tr["vip_tier"].notna()}, index=tr.index)
    for i, day in enumerate(days):
        end = pd.Timestamp(day) + _days(1)
        window = pd.Timestamp(day) - _days(ACTIVE_WINDOW_DAYS - 1)
        upto = both[both["start"] < end]
        seen = upto["stop"].clip(upper=end)
        last_any = seen.groupby(upto["trader_id"]).max().reindex(tr.index)
        last_trade = seen[upto["trade"]].groupby(upto.loc[upto["trade"], "trader_id"]).max().reindex(tr.index)
        early = both[both["start"] < window]
        before = early["stop"].clip(upper=window).groupby(early["trader_id"]).max().reindex(tr.index)
        inside = upto[upto["stop"] >= window]
        back = inside["start"].clip(lower=window).groupby(inside["trader_id"]).min().reindex(tr.index)
        came_back = (before < back.dt.normalize() - _days(churn_days)) & (first_trade < window)
        traded = first_trade < end
        stage = np.select(
            [~((tr["lead_at"] < end) | (tr["registered_at"] < end) | (first_any < end)),
             traded & (last_any < end - _days(churn_days)),
             traded & ((last_any < end - _days(dormant_days)) | (last_trade < window)),
             traded & came_back,
             traded,
             first_deposit < end, tr["kyc_approved_at"] < end, tr["registered_at"] < end],
            [None, "churned", "dormant", "reactivated", "active", "ftd", "kyc_approved", "registered"],
            default="lead")
        out[f"stage_{i}"] = stage
    return out


def stage_distribution(src: Source, *, as_of: date, dormant_days: int = 7, churn_days: int = 30,
                       trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """stage, traders, share, vip_traders at the end of ``as_of``, as compute_stage_distribution."""
    staged = _stages_on([as_of], src, dormant_days, churn_days, trader_filter)
    staged = staged[staged["stage_0"].notna()]
    counts = staged.groupby("stage_0").agg(traders=("is_vip", "size"), vip_traders=("is_vip", "sum"))
    frame = pd.DataFrame({"stage": STAGES,
                          "traders": [int(counts["traders"].get(s, 0)) for s in STAGES],
                          "vip_traders": [int(counts["vip_traders"].get(s, 0)) for s in STAGES]})
    total = frame["traders"].sum()
    frame["share"] = frame["traders"] / total if total else 0.0
    return frame[["stage", "traders", "share", "vip_traders"]]


def stage_flows(src: Source, *, from_date: date, to_date: date, dormant_days: int = 7, churn_days: int = 30,
                trader_filter: TraderFilter = EVERYONE_BUT_TEST) -> pd.DataFrame:
    """from_stage, to_stage, traders between the ends of two days, as compute_stage_flows."""
    staged = _stages_on([from_date, to_date], src, dormant_days, churn_days, trader_filter)
    staged = staged[staged["stage_1"].notna()]
    origin = staged["stage_0"].where(staged["stage_0"].notna(), "not_captured")
    frame = pd.DataFrame({"from_stage": origin, "to_stage": staged["stage_1"]}).value_counts().rename(
        "traders").reset_index()
    order = {stage: i for i, stage in enumerate(("not_captured", *STAGES))}
    frame["traders"] = frame["traders"].astype("int64")
    return frame.sort_values(["from_stage", "to_stage"], key=lambda c: c.map(order)).reset_index(drop=True)
