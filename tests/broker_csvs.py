"""Write a database's data tables as the documented import CSVs (docs/import_formats.md), so a test can
fill a second database through ``cli.py import`` alone, as a broker without the simulator would.

Every id becomes the row's external id; times are written as UTC ISO 8601 with a ``Z``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

# Load order (parents first) and the columns each file carries, as docs/import_formats.md lists them.
FILES: dict[str, list[str]] = {
    "traders": ["external_id", "registered_at", "lead_at", "country", "email", "first_name", "last_name", "phone",
                "timezone", "language", "acquisition_channel", "campaign_source", "affiliate_id", "kyc_status",
                "kyc_approved_at", "vip_tier", "is_test", "is_blocked", "consent_email", "consent_sms",
                "consent_push", "consent_whatsapp"],
    "accounts": ["external_id", "trader_external_id", "platform", "login", "currency", "leverage", "opened_at",
                 "is_demo", "server", "account_group"],
    "kyc_events": ["external_id", "trader_external_id", "status", "occurred_at", "reason"],
    "transactions": ["external_id", "trader_external_id", "kind", "status", "amount", "currency", "amount_usd",
                     "created_at", "method", "psp", "account_external_id", "comment"],
    "trades": ["external_id", "trader_external_id", "account_external_id", "symbol", "side", "lots", "opened_at",
               "closed_at", "open_price", "close_price", "profit_usd", "commission_usd", "swap_usd", "asset_class",
               "notional_usd", "close_reason", "leverage_used", "channel"],
    "sessions": ["external_id", "trader_external_id", "started_at", "duration_s", "surface"],
    "portal_events": ["external_id", "trader_external_id", "event", "occurred_at", "properties"],
}


def write_broker_csvs(engine: sa.Engine, folder: Path) -> list[Path]:
    """One CSV per data table of ``engine`` in ``folder``; the paths in load order."""
    with engine.connect() as conn:
        ids = pd.read_sql(sa.text("SELECT trader_id, external_id FROM traders"), conn).set_index("trader_id")
        accounts = pd.read_sql(sa.text("SELECT account_id, external_id FROM accounts"), conn).set_index("account_id")
        paths = []
        for table, columns in FILES.items():
            frame = pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)
            if "trader_id" in frame and table != "traders":
                frame["trader_external_id"] = frame["trader_id"].map(ids["external_id"])
            if "account_id" in frame and table != "accounts":
                frame["account_external_id"] = frame["account_id"].map(accounts["external_id"])
            for column in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").where(frame[column].notna())
            path = folder / f"{table}.csv"
            frame[[c for c in columns if c in frame.columns]].to_csv(path, index=False)
            paths.append(path)
    return paths
