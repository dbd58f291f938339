"""The IP → province tables of `[enrich] geoip_csv` (collectors/ingest/enrich.py).

`data/geolite2-city/` is a tiny synthetic GeoLite2 City CSV edition in MaxMind's
layout: the IPv4 and IPv6 blocks files and the English locations file, with the
header rows MaxMind ships (networks and their assignments are made up; the
geoname ids and ISO 3166-2:VN codes are the real ones). MaxMind ships IPv4 and
IPv6 blocks as two files while `geoip_csv` names one, so both are also loaded
concatenated (`cat` keeps the second header row, which the loader must skip).

`data/provinces-ip2location.csv` is a range CSV shaped as IP2Location ships its
files: integer addresses (IPv4 and IPv6), every field quoted, no header row,
`-` for an unknown region.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ingest_helpers import DATA, browser_post, page_view

from pressmeter.collectors.ingest.enrich import ProvinceTable, load_provinces, parse_ip
from pressmeter.errors import ConfigError

GEOLITE = DATA / "geolite2-city"
BLOCKS_V4 = GEOLITE / "GeoLite2-City-Blocks-IPv4.csv"
BLOCKS_V6 = GEOLITE / "GeoLite2-City-Blocks-IPv6.csv"
LOCATIONS = GEOLITE / "GeoLite2-City-Locations-en.csv"

# address → province, by the synthetic GeoLite2 files
IPV4_EXPECTED = {
    "14.160.0.0": "VN-HN",  # first address of 14.160.0.0/17 (Hanoi)
    "14.160.1.2": "VN-HN",
    "14.160.127.255": "VN-HN",  # last address of the /17
    "14.160.128.0": "VN-SG",  # the next network (Ho Chi Minh City)
    "113.160.42.7": "VN-DN",
    "113.162.0.255": "VN-57",  # a numbered province (Binh Duong)
    "14.159.255.255": None,  # just below any network
    "113.161.5.5": None,  # geoname is Vietnam itself: no subdivision
    "1.53.0.1": None,  # no geoname_id, only registered_country (Vietnam)
    "171.97.1.1": None,  # a Thai subdivision: not a VN province
    "113.162.1.0": None,  # just after 113.162.0.0/24
    "8.8.8.8": None,
}
IPV6_EXPECTED = {
    "2001:ee0::": "VN-HN",
    "2001:ee0:4f00:1::1": "VN-HN",
    "2402:800:ffff:ffff:ffff:ffff:ffff:ffff": "VN-SG",  # last address of the /32
    "2405:4800:100:abcd::9": "VN-DN",
    "2402:801::": None,  # just after 2402:800::/32
    "2001:edf:ffff:ffff:ffff:ffff:ffff:ffff": None,  # just before 2001:ee0::/32
    "2405:4800:200::1": None,  # Vietnam, no subdivision
    "2405:4800:300::1": None,  # between two /48s
    "2403:6200::1": None,  # Thailand
    "2001:db8::1": None,
}


def _lookups(table: ProvinceTable, addresses) -> dict[str, str | None]:
    return {a: table.province(parse_ip(a)) for a in addresses}


@pytest.fixture(scope="module")
def both_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The IPv4 and IPv6 blocks files as one, as `cat v4 v6 > blocks.csv` makes it."""
    path = tmp_path_factory.mktemp("geolite") / "GeoLite2-City-Blocks.csv"
    path.write_bytes(BLOCKS_V4.read_bytes() + BLOCKS_V6.read_bytes())
    return path


def test_geolite2_ipv4_blocks():
    table = load_provinces(str(BLOCKS_V4), str(LOCATIONS))
    assert len(table) == 4  # HN, SG, DN, 57; the others carry no VN subdivision
    assert _lookups(table, IPV4_EXPECTED) == IPV4_EXPECTED
    assert set(_lookups(table, IPV6_EXPECTED).values()) == {None}


def test_geolite2_ipv6_blocks():
    table = load_provinces(str(BLOCKS_V6), str(LOCATIONS))
    assert len(table) == 3
    assert _lookups(table, IPV6_EXPECTED) == IPV6_EXPECTED
    assert set(_lookups(table, IPV4_EXPECTED).values()) == {None}


def test_geolite2_ipv4_and_ipv6_blocks_concatenated(both_blocks):
    table = load_provinces(str(both_blocks), str(LOCATIONS))
    assert len(table) == 7
    expected = {**IPV4_EXPECTED, **IPV6_EXPECTED}
    assert _lookups(table, expected) == expected


def test_ipv4_mapped_ipv6_address_is_looked_up_as_ipv4(both_blocks):
    # A service listening on "::" sees IPv4 clients as ::ffff:a.b.c.d.
    table = load_provinces(str(both_blocks), str(LOCATIONS))
    assert table.province(parse_ip("::ffff:14.160.1.2")) == "VN-HN"
    assert table.province(parse_ip("::ffff:113.160.42.7")) == "VN-DN"
    assert table.province(parse_ip("::ffff:8.8.8.8")) is None


def test_geolite2_blocks_without_locations_is_a_config_error():
    with pytest.raises(ConfigError, match="geoip_locations_csv"):
        load_provinces(str(BLOCKS_V4))


def test_range_csv_with_integer_addresses_as_ip2location_ships_it():
    table = load_provinces(str(DATA / "provinces-ip2location.csv"))
    assert len(table) == 4  # the "-" (unknown) row gives no province
    expected = {
        "14.160.0.0": "VN-HN",  # the first row: no header to skip
        "14.160.127.255": "VN-HN",
        "14.160.128.0": "VN-SG",
        "14.160.255.255": "VN-SG",
        "14.161.0.1": None,  # "-": unknown, not "VN--"
        "113.160.0.0": "VN-DN",
        "113.160.255.255": "VN-DN",
        "113.161.0.0": None,
        "14.159.255.255": None,
        "2001:ee0::1": "VN-HP",  # an IPv6 range as 128-bit integers
        "2001:ee1::": None,
        "0.0.0.1": None,
    }
    assert _lookups(table, expected) == expected


def test_range_csv_with_header_and_text_and_integer_addresses():
    # The synthetic table of the other tests: a header, a comment, both notations.
    table = load_provinces(str(DATA / "provinces.csv"))
    expected = {
        "14.160.1.2": "VN-HN",
        "14.160.200.9": "VN-SG",
        "113.160.0.1": "VN-DN",  # 1906311168,1906376703
        "2405:4800::1": "VN-HP",
        "113.161.0.0": None,
        "2405:4801::": None,
    }
    assert len(table) == 4
    assert _lookups(table, expected) == expected


@pytest.mark.kafka
def test_service_puts_geolite2_provinces_on_events(make_ingest, both_blocks):
    ingest = make_ingest(
        enrich={"geoip_csv": str(both_blocks), "geoip_locations_csv": str(LOCATIONS)}
    )
    sent = {
        "14.160.1.2": "VN-HN",
        "2402:800:1234::5": "VN-SG",
        "113.162.0.9": "VN-57",
        "171.97.1.1": None,
        "2405:4800:200::1": None,
        "::ffff:113.160.42.7": "VN-DN",  # an IPv4 client as a dual-stack proxy may name it
    }
    ids = {}
    for address in sent:
        event_id = f"geo-{uuid.uuid4().hex[:12]}"
        answer = browser_post(ingest.url, [page_view(event_id)], ip=address)
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
        ids[event_id] = address
    stored = {v["event_id"]: v for _, v, _ in ingest.events()}
    assert {ids[i]: stored[i].get("province") for i in ids} == sent
    assert {stored[i]["ip_class"] for i in ids} == {"residential"}
