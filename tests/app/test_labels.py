"""Display labels (components/labels.py): countries by name, channels as words, codes left as they are
where there is no name; and the pages show them where a user sees countries and channels."""

from __future__ import annotations

import json

import pytest

from components import labels


@pytest.mark.parametrize(("code", "name"), [
    ("DE", "Germany"), ("GB", "United Kingdom"), ("KR", "South Korea"), ("TW", "Taiwan"), ("de", "Germany"),
])
def test_a_country_code_is_shown_by_its_name(code, name):
    assert labels.country_name(code) == name


@pytest.mark.parametrize("value", ["XK", "ZZ", "Unknown", "Other", "", "DEU", None])
def test_a_value_without_a_country_name_is_shown_as_it_is(value):
    assert labels.country_name(value) == ("" if value is None else value)


@pytest.mark.parametrize(("code", "name"), [
    ("paid_search", "Paid search"), ("organic", "Organic"), ("social", "Social"), ("affiliate", "Affiliate"),
    ("referral", "Referral"), ("tv_ads", "Tv ads"), ("Unknown", "Unknown"),
])
def test_a_channel_is_shown_as_words(code, name):
    assert labels.channel_name(code) == name


def test_only_countries_and_channels_are_renamed():
    assert labels.display_value("country", "FR") == "France"
    assert labels.display_value("acquisition_channel", "paid_search") == "Paid search"
    assert labels.display_value("affiliate_id", "IB-7") == "IB-7"
    assert labels.display_value("platform", "MT5") == "MT5"
    assert labels.display_value(None, "paid_search") == "paid_search"


@pytest.fixture
def broker(seeded_broker, use_broker) -> str:
    """A simulated broker (400 traders over 200 days ending today) as the app's database."""
    from connectors.simulator import SimulationConfig

    return use_broker(seeded_broker(SimulationConfig(traders=400, days=200, seed=5)))


def _metric_help(at, label: str) -> str:
    return next(m.help for m in at.metric if m.label == label)


def test_the_lifecycle_page_explains_the_quick_ratio_and_every_status(broker, open_page):
    at = open_page("pages/lifecycle.py")
    assert "Traders gained for every trader lost" in _metric_help(at, "Quick ratio")
    assert "came back" in _metric_help(at, "Resurrecting, last week")
    chart_caption = next(c.value for c in at.caption if c.value.startswith("Each period counts"))
    for status in ("New", "Returning", "Resurrecting", "Dormant"):
        assert f"**{status}**: " in chart_caption


def test_a_funnel_broken_down_by_country_shows_names_with_the_code_on_hover(broker, open_page):
    at = open_page("pages/funnels.py")
    at.multiselect(key="funnels.steps").set_value(["registered", "ftd"]).run()
    at.segmented_control(key="funnels.breakdown_kind").set_value("trader").run()
    at.selectbox(key="funnels.breakdown").select("country").run()
    shown = at.get_by_key("funnels.table").dataframe[0].value["Breakdown"].tolist()
    assert "Germany" in shown and "DE" not in shown
    spec = next(c.proto.spec for c in at.get("vega_lite_chart") if "breakdown_value" in c.proto.spec)
    encoding = json.loads(spec).get("encoding") or json.loads(spec)["layer"][0]["encoding"]
    assert {"field": "breakdown_value_code", "title": "Code", "type": "nominal"} in encoding["tooltip"]
    assert "First touch: a trader counts under the value on their earliest" in \
        at.radio(key="funnels.attribution").help


def test_the_overview_breakdown_and_filters_show_countries_and_channels_by_name(broker, open_page):
    at = open_page()
    assert "Germany" in at.multiselect(key="country").options and "DE" not in at.multiselect(key="country").options
    assert "Paid search" in at.multiselect(key="channel").options
    table = at.get_by_key("overview.breakdown_view.table").dataframe[0].value  # by country, the default
    assert "Germany" in table["Country"].tolist() and "DE" not in table["Country"].tolist()
    spec = next(c.proto.spec for c in at.get("vega_lite_chart") if '"value_code"' in c.proto.spec)
    assert {"field": "value_code", "title": "Code", "type": "nominal"} in json.loads(spec)["encoding"]["tooltip"]


def test_a_link_with_codes_still_filters_and_names_them(broker, open_linked):
    at = open_linked("pages/overview.py", {"country": ["DE"], "channel": ["paid_search"]})
    assert not at.exception
    assert at.multiselect(key="country").value == ["DE"] and at.multiselect(key="channel").value == ["paid_search"]
    assert at.query_params["country"] in ("Germany", ["Germany"]) and "Paid search" in at.query_params["channel"]
    assert "Country: Germany · Channel: Paid search" in at.caption[0].value
    assert not [w for w in at.warning if "ignored" in w.value]


def test_the_stage_chart_says_what_each_stage_means(broker, open_page):
    at = open_page("pages/lifecycle.py")
    spec = next(json.loads(c.proto.spec) for c in at.get("vega_lite_chart") if '"meaning"' in c.proto.spec)
    assert {"field": "meaning", "title": "Means", "type": "nominal"} in spec["layer"][0]["encoding"]["tooltip"]
