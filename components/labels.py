"""What the pages show for stored codes, and the plain words beside terms a first-time user may not know.

Countries are stored as ISO 3166-1 alpha-2 codes ("DE") and acquisition channels as snake_case codes
("paid_search"); the pages show names ("Germany", "Paid search"). The data, the CLI's JSON and CSV
downloads keep the codes. Country names come from the installed ``pycountry`` package (no network at run
time); a code it does not know (or a blank) is shown as it is.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pycountry

# Display names of the acquisition channels brokers use; any other code is shown as words ("tv_ads" ->
# "Tv ads").
CHANNELS = {
    "paid_search": "Paid search", "organic": "Organic", "social": "Social", "affiliate": "Affiliate",
    "referral": "Referral",
}


@cache
def country_name(code: object) -> str:
    """The common English name of an ISO alpha-2 country code ("DE" -> "Germany", "KR" -> "South Korea");
    anything else as it is."""
    text = "" if code is None else str(code)
    if len(text) != 2 or not text.isalpha():
        return text
    country = pycountry.countries.get(alpha_2=text.upper())
    if country is None:
        return text
    return getattr(country, "common_name", None) or country.name


def channel_name(code: object) -> str:
    """An acquisition channel as words ("paid_search" -> "Paid search")."""
    text = "" if code is None else str(code)
    return CHANNELS.get(text) or text.replace("_", " ").strip().capitalize() or text


# Trader attributes whose stored codes have display names, by column name.
_NAMERS = {"country": country_name, "acquisition_channel": channel_name, "channel": channel_name}


def display_value(attribute: str | None, value: object) -> str:
    """``value`` of the trader attribute ``attribute`` as a page shows it (a name for a country or channel)."""
    namer = _NAMERS.get(attribute or "")
    return namer(value) if namer is not None else ("" if value is None else str(value))


def has_names(attribute: str | None) -> bool:
    """Whether the pages show ``attribute``'s values by name (and its code on hover)."""
    return (attribute or "") in _NAMERS


def with_names(frame: pd.DataFrame, column: str, attribute: str | None) -> pd.DataFrame:
    """``frame`` with ``column``'s values shown by name when ``attribute`` has names (countries, channels),
    the stored codes kept beside them in ``<column>_code`` for a tooltip; otherwise ``frame`` itself."""
    if not has_names(attribute) or column not in frame.columns:
        return frame
    return frame.assign(**{f"{column}_code": frame[column].to_numpy(),
                           column: [display_value(attribute, v) for v in frame[column]]})


# Plain-language explanations shown beside the terms (``help=`` tooltips and captions).
QUICK_RATIO = ("Traders gained for every trader lost: (new + resurrecting) ÷ dormant. Above 1 the active base "
               "grows; 0.5 means two traders went quiet for each one who started or came back.")
LIFECYCLE_STATUSES = {
    "new": "active for the first time: their first-ever activity of this kind falls in this period",
    "returning": "active in this period and in the one before it: the regulars",
    "resurrecting": "active again after at least one period without activity: traders who came back",
    "dormant": "active in the period before, not in this one: traders who went quiet (counted once, as a "
               "negative number)",
}
STAGES = {
    "lead": "left contact details, not registered",
    "registered": "opened a client account, KYC not approved yet",
    "kyc_approved": "identity checked, no deposit yet",
    "ftd": "made a first deposit, never traded",
    "active": "traded in the last 30 days and active (trading or an approved deposit; logins too with "
              "TRADERLENS_CHURN_ACTIVITY=any) within the dormant days (7 by default)",
    "dormant": "quiet for the dormant days (7 by default) or with no trade in 30 days, not yet churned",
    "churned": "no trading or approved deposit (logins too with TRADERLENS_CHURN_ACTIVITY=any) for the churn "
               "days (30 by default)",
    "reactivated": "came back in the last 30 days after a churn-length gap",
    "not_captured": "not yet a lead on that day",
}
ATTRIBUTION = {
    "first_touch": "First touch: a trader counts under the value on their earliest funnel event that has one "
                   "(for example the campaign that first brought them).",
    "last_touch": "Last touch: under the value on their latest such event (for example the campaign just "
                  "before they converted).",
}
