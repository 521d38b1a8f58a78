"""The consolidated trader database as SQLAlchemy Core tables.

These definitions are the single description of the schema that queries are written against.
Alembic migrations in ``connectors/migrations`` create the same schema on every backend; a test
compares the two so they cannot drift apart.

Conventions:
- ids are BIGINT assigned by the writer (simulator or importer), so bulk loads need no sequence;
- every source row keeps an ``external_id`` (unique per table), which makes re-imports idempotent;
- times are naive UTC ``TIMESTAMP``s; every event table is indexed by trader and time, and by the
  time of its events alone, so the data's span (the oldest and newest event) is index lookups;
- money is exact ``NUMERIC(18, 2)`` in the account currency (``amount``) and in USD (``*_usd``).
  Aggregates over NUMERIC come back as Decimal; analytics casts sums to Float where it needs floats.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

metadata = sa.MetaData()

Money = sa.Numeric(18, 2, asdecimal=False)
Lots = sa.Numeric(12, 2, asdecimal=False)

# Names every trader_events row can carry besides portal events. A portal event may not reuse one
# of these names, or funnels over the unified stream could not tell the two apart.
CORE_EVENTS: tuple[str, ...] = (
    "lead_captured", "registered", "kyc_submitted", "kyc_approved", "kyc_rejected",
    "deposit", "ftd", "deposit_declined", "withdrawal", "trade", "login",
)

PLATFORMS = ("MT4", "MT5", "cTrader")
ASSET_CLASSES = ("fx", "crypto", "indices", "commodities", "stocks")
TXN_KINDS = ("deposit", "withdrawal", "bonus", "bonus_cancel", "adjustment", "fee", "ib_commission")
TXN_STATUSES = ("approved", "declined", "pending", "reversed", "chargeback")
# Statuses of a deposit that was approved when it was made: "reversed" (taken back by the broker or
# the payment provider) and "chargeback" (disputed by the card holder) were approved first and
# taken back later. The FTD is the first of them (affiliates are paid on it); deposits, withdrawals
# and net deposits count "approved" ones only (docs/semantics.md, "Ledger").
TAKEN_BACK_STATUSES = ("reversed", "chargeback")
FTD_STATUSES = ("approved", *TAKEN_BACK_STATUSES)
KYC_STATUSES = ("submitted", "approved", "rejected", "resubmission")
SURFACES = ("web", "mobile", "desktop")
CLOSE_REASONS = ("client", "sl", "tp", "stop_out")
TRADE_CHANNELS = ("desktop", "web", "mobile", "expert")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "affiliate", "referral")

traders = sa.Table(
    "traders", metadata,
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    # A lead has a lead_at and no registered_at yet.
    sa.Column("lead_at", sa.DateTime),
    sa.Column("registered_at", sa.DateTime),
    sa.Column("first_name", sa.String(80)),
    sa.Column("last_name", sa.String(80)),
    sa.Column("email", sa.String(254)),
    sa.Column("phone", sa.String(32)),
    sa.Column("country", sa.String(2)),
    sa.Column("language", sa.String(8)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("acquisition_channel", sa.String(32)),
    sa.Column("campaign_source", sa.String(64)),
    sa.Column("affiliate_id", sa.String(64)),
    sa.Column("kyc_status", sa.String(16), nullable=False, server_default="none"),
    sa.Column("kyc_approved_at", sa.DateTime),
    sa.Column("vip_tier", sa.String(16)),
    sa.Column("is_test", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_blocked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("consent_email", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("consent_sms", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("consent_push", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("consent_whatsapp", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source", sa.String(16), nullable=False, server_default="import"),
    # The broker's employee who looks after the trader (account manager or retention agent).
    sa.Column("owner", sa.String(80)),
)
sa.Index("ix_traders_registered_at", traders.c.registered_at)
sa.Index("ix_traders_lead_at", traders.c.lead_at)

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False),
    sa.Column("platform", sa.String(8), nullable=False),
    sa.Column("server", sa.String(64)),
    sa.Column("login", sa.String(32), nullable=False),
    sa.Column("account_group", sa.String(64)),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("leverage", sa.Integer),
    sa.Column("is_demo", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("opened_at", sa.DateTime, nullable=False),
)
sa.Index("ix_accounts_trader", accounts.c.trader_id, accounts.c.opened_at)

trades = sa.Table(
    "trades", metadata,
    sa.Column("trade_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.account_id")),
    sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("asset_class", sa.String(16)),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("lots", Lots, nullable=False),
    sa.Column("notional_usd", Money),
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("closed_at", sa.DateTime, nullable=False),
    sa.Column("open_price", sa.Double, nullable=False),
    sa.Column("close_price", sa.Double, nullable=False),
    sa.Column("profit_usd", Money, nullable=False),
    sa.Column("commission_usd", Money, nullable=False, server_default="0"),
    sa.Column("swap_usd", Money, nullable=False, server_default="0"),
    sa.Column("leverage_used", sa.Double),
    sa.Column("close_reason", sa.String(16)),
    sa.Column("channel", sa.String(16)),
)
sa.Index("ix_trades_trader_opened", trades.c.trader_id, trades.c.opened_at)
sa.Index("ix_trades_opened", trades.c.opened_at)

transactions = sa.Table(
    "transactions", metadata,
    sa.Column("txn_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.account_id")),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_usd", Money, nullable=False),
    sa.Column("method", sa.String(32)),
    sa.Column("psp", sa.String(32)),
    sa.Column("comment", sa.String(255)),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
sa.Index("ix_transactions_trader_created", transactions.c.trader_id, transactions.c.created_at)
sa.Index("ix_transactions_created", transactions.c.created_at)

kyc_events = sa.Table(
    "kyc_events", metadata,
    sa.Column("kyc_event_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(255)),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
)
sa.Index("ix_kyc_events_trader_time", kyc_events.c.trader_id, kyc_events.c.occurred_at)
sa.Index("ix_kyc_events_occurred", kyc_events.c.occurred_at)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("session_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("duration_s", sa.Integer, nullable=False),
    sa.Column("surface", sa.String(16), nullable=False),
)
sa.Index("ix_sessions_trader_started", sessions.c.trader_id, sessions.c.started_at)
sa.Index("ix_sessions_started", sessions.c.started_at)

portal_events = sa.Table(
    "portal_events", metadata,
    sa.Column("portal_event_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.String(64), nullable=False, unique=True),
    sa.Column("trader_id", sa.BigInteger, sa.ForeignKey("traders.trader_id"), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    # JSON object as text: one portable type for DuckDB and PostgreSQL, read with each
    # backend's JSON functions.
    sa.Column("properties", sa.Text),
)
sa.Index("ix_portal_events_trader_time", portal_events.c.trader_id, portal_events.c.occurred_at)
sa.Index("ix_portal_events_occurred", portal_events.c.occurred_at)

imports = sa.Table(
    "imports", metadata,
    sa.Column("import_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("rows_inserted", sa.Integer, nullable=False),
    sa.Column("rows_skipped", sa.Integer, nullable=False),
    sa.Column("imported_at", sa.DateTime, nullable=False),
    # Rows already present that the file changed, and rows already present with the same values.
    sa.Column("rows_updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("imported_by", sa.String(80)),
)

# The change history of imported rows: one row per column a re-import changed (an import that
# updates a row already present, e.g. a deposit going from pending to approved), written in the
# import's own transaction. Values are text as the import compared them (NULL for an empty value).
row_changes = sa.Table(
    "row_changes", metadata,
    sa.Column("change_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("import_id", sa.BigInteger, nullable=False),
    sa.Column("table_name", sa.String(32), nullable=False),
    sa.Column("row_id", sa.BigInteger, nullable=False),
    sa.Column("external_id", sa.String(64), nullable=False),
    sa.Column("column_name", sa.String(64), nullable=False),
    sa.Column("old_value", sa.Text),
    sa.Column("new_value", sa.Text),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("changed_by", sa.String(80), nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
)
sa.Index("ix_row_changes_row", row_changes.c.table_name, row_changes.c.external_id)
sa.Index("ix_row_changes_import", row_changes.c.import_id)

# Rollup of trader_events per trader, event and day (reporting time zone; a day is stored as the
# UTC instant of its local midnight) (see connectors/rollups.py). Derived:
# rebuilt by seeding and refreshed by imports in their own transaction, never written by hand.
daily_activity = sa.Table(
    "daily_activity", metadata,
    sa.Column("trader_id", sa.BigInteger, nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("day", sa.DateTime, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("amount_usd", Money),
    sa.Column("first_at", sa.DateTime, nullable=False),
    sa.Column("last_at", sa.DateTime, nullable=False),
)
sa.Index("ix_daily_activity_event_day", daily_activity.c.event, daily_activity.c.day)
sa.Index("ix_daily_activity_trader", daily_activity.c.trader_id, daily_activity.c.day)

# Closed positions rolled up per trader, UTC close day and asset class (see connectors/rollups.py).
daily_trading = sa.Table(
    "daily_trading", metadata,
    sa.Column("trader_id", sa.BigInteger, nullable=False),
    sa.Column("day", sa.DateTime, nullable=False),
    sa.Column("asset_class", sa.String(16)),
    sa.Column("closed", sa.Integer, nullable=False),
    sa.Column("carried", sa.Integer, nullable=False),  # closed on a later day than opened
    sa.Column("costed", sa.Integer, nullable=False),  # with a commission or swap
    sa.Column("lots", Lots, nullable=False),
    sa.Column("notional_usd", Money),
    sa.Column("profit_usd", Money, nullable=False),
    sa.Column("commission_usd", Money, nullable=False),
    sa.Column("swap_usd", Money, nullable=False),
    sa.Column("client_pnl_usd", Money, nullable=False),  # profit + commission + swap
    sa.Column("first_opened_at", sa.DateTime, nullable=False),
    sa.Column("last_closed_at", sa.DateTime, nullable=False),
)
sa.Index("ix_daily_trading_day", daily_trading.c.day)
sa.Index("ix_daily_trading_trader", daily_trading.c.trader_id, daily_trading.c.day)

# The days on which a trader opened, closed or held a position (held: opened = closed = 0): every
# "did this trader trade in the period" reads it.
trading_days = sa.Table(
    "trading_days", metadata,
    sa.Column("trader_id", sa.BigInteger, nullable=False),
    sa.Column("day", sa.DateTime, nullable=False),
    sa.Column("opened", sa.Integer, nullable=False),
    sa.Column("closed", sa.Integer, nullable=False),
)
sa.Index("ix_trading_days_day", trading_days.c.day)
sa.Index("ix_trading_days_trader", trading_days.c.trader_id, trading_days.c.day)

# Each trader's first position opening, approved deposit (the FTD) and login, from daily_activity.
trader_firsts = sa.Table(
    "trader_firsts", metadata,
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("first_trade_at", sa.DateTime),
    sa.Column("first_deposit_at", sa.DateTime),
    sa.Column("first_login_at", sa.DateTime),
)

# What the rollups were built for: name -> value rows "reporting_tz" (the IANA zone whose days they
# bucket by) and "version" (connectors.rollups.ROLLUP_VERSION). connectors.rollups rebuilds the
# rollups when either differs from the running configuration.
rollup_state = sa.Table(
    "rollup_state", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# Behavioural clusterings saved from the Segments page or `cli.py segment` (analytics.segmentation).
# JSON text columns: features (list of feature names), settings (transforms, algorithm options),
# model (what assigns a new trader to a cluster without a refit), clusters (list of {cluster, name,
# size, ...}) and diagnostics. run_id is allocated max + 1 by the writer.
clustering_runs = sa.Table(
    "clustering_runs", metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("k", sa.Integer),
    sa.Column("seed", sa.Integer),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("settings", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("clusters", sa.Text),
    sa.Column("diagnostics", sa.Text),
)

# Each trader's cluster in a saved run (-1: noise of a density-based run). No foreign key to traders
# here or below: DuckDB cannot update a parent row that a foreign key references, and imports
# update traders.
cluster_assignments = sa.Table(
    "cluster_assignments", metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("cluster", sa.Integer, nullable=False),
)

SEGMENT_KINDS = ("rules", "cluster", "list", "funnel_step")

# Saved segments (analytics.segments): a named definition (JSON) of one kind, versioned; each save
# of a changed definition adds a segment_versions row and increments version.
segments = sa.Table(
    "segments", metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(120), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String(80), nullable=False),
    sa.Column("refreshed_at", sa.DateTime),
    sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
)

segment_versions = sa.Table(
    "segment_versions", metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("saved_at", sa.DateTime, nullable=False),
    sa.Column("saved_by", sa.String(80), nullable=False),
)

# A segment's members as of its last refresh, since when (the refresh that found them).
segment_members = sa.Table(
    "segment_members", metadata,
    sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("entered_at", sa.DateTime, nullable=False),
)

# Every change of membership found by a refresh ('entered' or 'left'), with the definition's version:
# a segment's size over time, and the "entered segment" event, read it.
segment_changes = sa.Table(
    "segment_changes", metadata,
    sa.Column("change_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("segment_id", sa.BigInteger, nullable=False),
    sa.Column("trader_id", sa.BigInteger, nullable=False),
    sa.Column("change", sa.String(8), nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)
sa.Index("ix_segment_changes_segment", segment_changes.c.segment_id, segment_changes.c.changed_at)
sa.Index("ix_segment_changes_trader", segment_changes.c.trader_id, segment_changes.c.changed_at)

MODEL_NAMES = ("churn", "deposit", "ftd")
MODEL_STATUSES = ("candidate", "active", "retired")

# Trained models (analytics.models.registry): one row per training run of a model kind, numbered
# per kind (version). status: 'candidate' until an admin promotes it, then 'active' (one per kind),
# then 'retired'. JSON text columns: snapshots (the plan's dates), params, metrics (the card's
# figures), calibration (Platt slope and intercept on the margin), summary (global SHAP), reference
# (the drift reference), medians (typical feature values for reasons); artifact is the XGBoost
# model as JSON (the booster's own format, loadable by any XGBoost 3).
model_runs = sa.Table(
    "model_runs", metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("trained_at", sa.DateTime, nullable=False),
    sa.Column("trained_by", sa.String(80), nullable=False),
    sa.Column("cutoff", sa.DateTime, nullable=False),
    sa.Column("snapshots", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("calibration", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("medians", sa.Text, nullable=False),
    sa.Column("artifact", sa.Text, nullable=False),
    sa.Column("promoted_at", sa.DateTime),
    sa.Column("promoted_by", sa.String(80)),
    sa.UniqueConstraint("model", "version", name="uq_model_runs_version"),
)

# One scoring of a model's population with its active run: when, as of which snapshot, how many
# traders, the score distribution and the drift (PSI) against the run's training rows (JSON).
score_runs = sa.Table(
    "score_runs", metadata,
    sa.Column("score_run_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(16), nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("scored_at", sa.DateTime, nullable=False),
    sa.Column("scored_by", sa.String(80), nullable=False),
    sa.Column("traders", sa.Integer, nullable=False),
    sa.Column("duration_s", sa.Float),
    sa.Column("distribution", sa.Text),
    sa.Column("drift", sa.Text),
)

# The latest score of every trader in a model's population (replaced by each scoring): calibrated
# probability, band, decile (1 = the highest 10%) and the stored explanation (JSON: base, top
# reasons as [feature, value, contribution], the rest), in calibrated log-odds.
model_scores = sa.Table(
    "model_scores", metadata,
    sa.Column("model", sa.String(16), primary_key=True),
    sa.Column("trader_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.BigInteger, nullable=False),
    sa.Column("score_run_id", sa.BigInteger, nullable=False),
    # Double: DuckDB's Float is 4 bytes, and a rule `score.churn = x` must find the stored value.
    sa.Column("probability", sa.Double, nullable=False),
    sa.Column("band", sa.String(12), nullable=False),
    sa.Column("decile", sa.Integer, nullable=False),
    sa.Column("explanation", sa.Text, nullable=False),
)
sa.Index("ix_model_scores_probability", model_scores.c.model, model_scores.c.probability)

# Training requested from the app, run in the background (analytics.models.jobs): any app process
# reads the progress here. status: queued, running, done, failed.
model_jobs = sa.Table(
    "model_jobs", metadata,
    sa.Column("job_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(16), nullable=False),
    sa.Column("requested_by", sa.String(80), nullable=False),
    sa.Column("requested_at", sa.DateTime, nullable=False),
    sa.Column("as_of", sa.DateTime),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("message", sa.Text),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("heartbeat_at", sa.DateTime),
    sa.Column("run_id", sa.BigInteger),
    sa.Column("error", sa.Text),
)

# Derived tables, rebuilt from the data tables in this order (connectors.rollups.refresh_rollups).
ROLLUP_TABLES: tuple[sa.Table, ...] = (daily_activity, daily_trading, trading_days, trader_firsts)

# Tables in load order (parents first); the simulator and the importers write in this order.
DATA_TABLES: tuple[sa.Table, ...] = (
    traders, accounts, kyc_events, transactions, trades, sessions, portal_events,
)

# Column each event table is timed by, for freshness and date-range summaries.
TIME_COLUMNS: dict[str, str] = {
    "traders": "registered_at",
    "accounts": "opened_at",
    "kyc_events": "occurred_at",
    "transactions": "created_at",
    "trades": "opened_at",
    "sessions": "started_at",
    "portal_events": "occurred_at",
}

# ---------------------------------------------------------------------------------------------
# The unified event stream
#
# Each core event is one SELECT over the table it comes from (core_event_select), and the first
# deposit is defined once (first_deposits). The trader_events view is the UNION ALL of those SELECTs
# and every portal event under its own name (trader_events_select); the migration that creates the
# view holds the SQL trader_events_view_sql() generates from them (a test keeps the two equal).
# analytics.events, the catalogue analytics reads events through, builds on the same SELECTs, so an
# event name means the same rows whether it is read through the view or straight from its table.
# They live here, not in analytics/, because the view and the rollups (connectors.rollups) need them
# too and connectors never import analytics.

EventName = sa.String(64)
EventSource = sa.String(16)


FirstDepositForm = Literal["time", "detail", "deposits"]


def first_deposits(*conditions: sa.ColumnElement[bool], form: FirstDepositForm = "time") -> sa.Select:
    """Each trader's first deposit (the FTD): their first deposit that was approved when it was made
    (status approved, or reversed or charged back later: :data:`FTD_STATUSES`) across all their
    accounts, the earliest ``created_at``; of deposits at that same instant, the one with the lowest
    ``txn_id``. A deposit taken back later stays the FTD (affiliates and CPA deals are paid on it).

    ``form`` "time": one row per trader, ``trader_id`` and ``occurred_at``, the MIN(created_at):
    tied deposits share their instant, so the tie-break cannot change it, and a grouped minimum is
    cheaper than ranking every deposit. "detail": the same plus the chosen deposit's ``txn_id`` and
    ``amount_usd``. "deposits": every approved deposit and the FTD itself (``trader_id``,
    ``created_at``, ``status``, ``amount_usd``, ``is_ftd``) with its trader's FTD time as
    ``occurred_at``, from one window over the ledger, for questions about the deposits after the FTD
    and about FTDs taken back.

    ``conditions`` on ``transactions`` restrict the ledger read first; they must keep or drop whole
    traders (a condition on ``trader_id``), or the first would be of what is left.
    """
    t = transactions.c
    once_approved = (t.kind == "deposit", t.status.in_(FTD_STATUSES), *conditions)
    if form == "time":
        return sa.select(t.trader_id, sa.func.min(t.created_at).label("occurred_at")).where(
            *once_approved).group_by(t.trader_id)
    if form not in ("detail", "deposits"):
        raise ValueError(f"unknown form {form!r}; use time, detail or deposits")
    # One window (the FTD first): its first row's time is every row's FTD time.
    window = {"partition_by": t.trader_id, "order_by": (t.created_at, t.txn_id)}
    columns = [t.trader_id, t.txn_id, t.created_at, t.amount_usd, sa.func.row_number().over(**window).label("rn")]
    if form == "deposits":
        columns += [t.status, sa.func.first_value(t.created_at).over(**window).label("first_at")]
    ranked = sa.select(*columns).where(*once_approved).subquery("ranked_deposits")
    r = ranked.c
    if form == "deposits":
        return (sa.select(r.trader_id, r.created_at, r.status, r.amount_usd, (r.rn == 1).label("is_ftd"),
                          r.first_at.label("occurred_at"))
                .where(sa.or_(r.status == "approved", r.rn == 1)))
    return sa.select(r.trader_id, r.created_at.label("occurred_at"), r.txn_id, r.amount_usd).where(r.rn == 1)


# Ledger events: (kind, status) of the transactions each one is.
_LEDGER_EVENTS: dict[str, tuple[str, str]] = {
    "deposit": ("deposit", "approved"), "withdrawal": ("withdrawal", "approved"),
    "deposit_declined": ("deposit", "declined"),
}


def _core_event(name: str, amount: bool) -> tuple[sa.Table, sa.Select]:
    """(the table core event ``name`` is read from, its SELECT trader_id, occurred_at[, amount_usd])."""
    def rows(table: sa.Table, at: sa.ColumnElement, usd: sa.ColumnElement | None,
             *where: sa.ColumnElement[bool]) -> tuple[sa.Table, sa.Select]:
        columns = [table.c.trader_id, at.label("occurred_at")]
        if amount:
            columns.append((usd if usd is not None else sa.cast(sa.null(), Money)).label("amount_usd"))
        return table, sa.select(*columns).where(*where)

    t, k = traders.c, kyc_events.c
    if name in ("lead_captured", "registered"):
        at = t.lead_at if name == "lead_captured" else t.registered_at
        return rows(traders, at, None, at.is_not(None))
    if name in ("kyc_submitted", "kyc_approved", "kyc_rejected"):
        # Every status but approved and rejected (submitted, resubmission) is a submission.
        status = (k.status.not_in(("approved", "rejected")) if name == "kyc_submitted"
                  else k.status == name.removeprefix("kyc_"))
        return rows(kyc_events, k.occurred_at, None, status)
    if name in _LEDGER_EVENTS:
        kind, status = _LEDGER_EVENTS[name]
        x = transactions.c
        return rows(transactions, x.created_at, x.amount_usd, x.kind == kind, x.status == status)
    if name == "ftd":
        if amount:
            first = first_deposits(form="detail")
            c = first.selected_columns
            return transactions, first.with_only_columns(c.trader_id, c.occurred_at, c.amount_usd)
        # A grouped SELECT wrapped, so callers can filter its time in WHERE like any other event's.
        grouped = first_deposits().subquery("ftd")
        return transactions, sa.select(grouped.c.trader_id, grouped.c.occurred_at)
    if name == "trade":  # a trade is its opening
        return rows(trades, trades.c.opened_at, trades.c.notional_usd)
    if name == "login":
        return rows(sessions, sessions.c.started_at, None)
    raise ValueError(f"{name!r} is not a core event; core events are {', '.join(CORE_EVENTS)}")


def core_event_select(name: str, *, amount: bool = False) -> sa.Select:
    """SELECT ``trader_id``, ``occurred_at`` (and ``amount_usd`` with ``amount``: the deposit,
    withdrawal or FTD in USD, a trade's notional, else NULL) of every core event ``name``, read from
    the table it comes from; ``.where()`` on its columns filters the events. ValueError for a name
    outside :data:`CORE_EVENTS`."""
    return _core_event(name, amount)[1]


def trader_events_select() -> sa.CompoundSelect:
    """The trader_events view's query: every core event, then every portal event by its own name.

    Every branch casts ``event`` (and ``source``) to one type: with a VARCHAR name in one branch and
    a TEXT literal in another, PostgreSQL cannot push a filter such as ``event = 'trade'`` into the
    UNION ALL and reads every table behind it; with one type it drops each branch whose constant
    name cannot match.
    """
    def branch(select: sa.Select, event: sa.ColumnElement, source: str,
               amount_usd: sa.ColumnElement, properties: sa.ColumnElement) -> sa.Select:
        c = select.selected_columns
        return select.with_only_columns(
            c.trader_id, sa.cast(event, EventName).label("event"), c.occurred_at,
            sa.cast(sa.literal(source, EventSource), EventSource).label("source"), amount_usd.label("amount_usd"),
            properties.label("properties"))

    no_properties = sa.cast(sa.null(), sa.Text)
    branches = []
    for name in CORE_EVENTS:
        table, select = _core_event(name, amount=True)
        branches.append(branch(select, sa.literal(name, EventName), table.name, select.selected_columns.amount_usd,
                               no_properties))
    p = portal_events.c
    portal = sa.select(p.trader_id, p.occurred_at)
    branches.append(branch(portal, p.event, portal_events.name, sa.cast(sa.null(), Money), p.properties))
    return sa.union_all(*branches)


def trader_events_view_sql() -> str:
    """``CREATE VIEW trader_events AS …`` from :func:`trader_events_select`, as SQL both backends run."""
    from sqlalchemy.dialects import postgresql

    query = trader_events_select().compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return f"CREATE VIEW trader_events AS\n{query}"


# The view as a Table, for queries: it lives in its own MetaData so create_all never tries to create
# it as a table.
view_metadata = sa.MetaData()
trader_events = sa.Table(
    "trader_events", view_metadata,
    sa.Column("trader_id", sa.BigInteger),
    sa.Column("event", EventName),
    sa.Column("occurred_at", sa.DateTime),
    sa.Column("source", EventSource),
    sa.Column("amount_usd", Money),
    sa.Column("properties", sa.Text),
)

TRUTH_SCHEMA = "simulator_truth"
