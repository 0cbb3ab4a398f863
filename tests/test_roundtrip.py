"""sim.render is the exact inverse of parse: generated models and the fixture files."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carpd_py.model import CARP_STATES, UNKNOWN_STATE, CarpInfo, CarpNode, Interface, PfsyncInfo
from carpd_py.parse import parse_group, parse_ifconfig, parse_sysctl
from carpd_py.sim.render import render_group, render_ifconfig, render_sysctl

DATA = Path(__file__).parent / "data" / "ifconfig"
FIXTURES = sorted(p.name for p in DATA.glob("*.txt"))
# Fixtures holding lines that the parser skips (link-local inet6, hwfeatures, trunk: ...).
WITH_IGNORED_LINES = {"handbook_a.txt", "handbook_b.txt", "unknown_lines.txt"}

# IFFBITS of sbin/ifconfig/ifconfig.c: bit number (from 1) and name.
IFFBITS = (
    (1, "UP"),
    (2, "BROADCAST"),
    (3, "DEBUG"),
    (4, "LOOPBACK"),
    (5, "POINTOPOINT"),
    (6, "STATICARP"),
    (7, "RUNNING"),
    (8, "NOARP"),
    (9, "PROMISC"),
    (10, "ALLMULTI"),
    (11, "OACTIVE"),
    (12, "SIMPLEX"),
    (13, "LINK0"),
    (14, "LINK1"),
    (15, "LINK2"),
    (16, "MULTICAST"),
    (19, "AUTOCONF6TEMP"),
    (20, "MPLS"),
    (21, "WOL"),
    (22, "AUTOCONF6"),
    (23, "INET6_NOSOII"),
    (24, "AUTOCONF4"),
    (25, "MONITOR"),
    (26, "LRO"),
)


def flag_names(flags: int) -> tuple[str, ...]:
    return tuple(name for bit, name in IFFBITS if flags & (1 << (bit - 1)))


def ifname(*prefixes: str) -> st.SearchStrategy[str]:
    return st.builds(
        "{}{}".format, st.sampled_from(prefixes), st.integers(min_value=0, max_value=255)
    )


# One printed line of free text (description, media, status): anything but a newline.
line_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n"), min_size=1)
ipv4 = st.ip_addresses(v=4).map(str)
mac = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
word = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=15)
group = word.filter(lambda g: g != "all")
device = ifname("em", "igc", "ix", "vio", "vlan", "trunk", "aggr")
state = st.sampled_from((*CARP_STATES, UNKNOWN_STATE))
u8 = st.integers(min_value=0, max_value=255)


@st.composite
def inet4(draw: st.DrawFn) -> str:
    addr = draw(st.ip_addresses(v=4))
    net = ipaddress.IPv4Network((addr, draw(st.integers(0, 32))), strict=False)
    text = f"{addr} netmask 0x{int(net.netmask):08x}"
    if draw(st.booleans()):
        text += f" broadcast {net.broadcast_address}"
    return text


@st.composite
def inet6(draw: st.DrawFn) -> str:
    addr = draw(st.ip_addresses(v=6))
    assert isinstance(addr, ipaddress.IPv6Address)
    text = f"{addr} prefixlen {draw(st.integers(min_value=0, max_value=128))}"
    return text + draw(st.sampled_from(("", " autoconf", " autoconf temporary", " deprecated")))


@st.composite
def carp_info(draw: st.DrawFn) -> CarpInfo:
    vhids = draw(st.lists(st.integers(1, 255), min_size=1, max_size=6, unique=True))
    nodes = tuple(CarpNode(vhid, draw(state), draw(st.integers(0, 254))) for vhid in vhids)
    balancing = None
    if len(nodes) > 1:  # only printed, and only known, with several vhids
        balancing = draw(st.sampled_from(("none", "ip", "ip-stealth", "ip-unicast", "<UNKNOWN>")))
    return CarpInfo(
        carpdev=draw(st.none() | device),
        advbase=draw(st.integers(0, 254)),
        nodes=nodes,
        balancing=balancing,
        carppeer=draw(st.none() | ipv4),
    )


pfsync_info = st.builds(
    PfsyncInfo,
    syncdev=device,
    maxupd=u8,
    defer=st.booleans(),
    syncpeer=st.none() | ipv4,
)


@st.composite
def interface(draw: st.DrawFn) -> Interface:
    name = draw(ifname("em", "carp", "pfsync", "lo", "enc", "vlan"))
    flags = draw(st.integers(min_value=0, max_value=(1 << 26) - 1))
    return Interface(
        name=name,
        flags=flags,
        flag_names=flag_names(flags),
        mtu=draw(st.integers(0, 65535)),
        rdomain=draw(st.none() | st.integers(1, 255)),
        lladdr=draw(st.none() | mac),
        description=draw(st.none() | line_text),
        index=draw(st.none() | st.integers(1, 1 << 16)),
        priority=draw(st.none() | st.integers(0, 15)),
        llprio=draw(st.none() | st.integers(0, 7)),
        carp=draw(st.none() | carp_info()),
        pfsync=draw(st.none() | pfsync_info),
        groups=tuple(draw(st.lists(group, max_size=4, unique=True))),
        media=draw(st.none() | line_text),
        status=draw(
            st.none()
            | st.sampled_from(
                ("active", "no carrier", "master", "backup", "invalid", "down", "keepalive down")
            )
            | line_text
        ),
        inet=tuple(draw(st.lists(inet4() | inet6(), max_size=4))),
    )


@given(st.lists(interface(), max_size=6, unique_by=lambda i: i.name).map(tuple))
def test_parse_inverts_render(interfaces: tuple[Interface, ...]) -> None:
    assert parse_ifconfig(render_ifconfig(interfaces)) == interfaces


@given(group, st.integers(0, 255))
def test_group_roundtrip(name: str, demote: int) -> None:
    assert parse_group(render_group(name, demote)) == (name, demote)


@given(st.dictionaries(st.from_regex(r"net\.inet\.carp\.[a-z]{1,12}", fullmatch=True), u8))
def test_sysctl_roundtrip(values: dict[str, int]) -> None:
    assert parse_sysctl(render_sysctl(values)) == values


def test_render_matches_the_reference_samples() -> None:
    carp0 = Interface(
        name="carp0",
        flags=0x8843,
        flag_names=("UP", "BROADCAST", "RUNNING", "SIMPLEX", "MULTICAST"),
        mtu=1500,
        lladdr="00:00:5e:00:01:0a",
        description="WAN VIP",
        index=7,
        priority=15,
        llprio=3,
        carp=CarpInfo(carpdev="em0", advbase=1, nodes=(CarpNode(10, "MASTER", 0),)),
        groups=("carp",),
        status="master",
        inet=("203.0.113.1 netmask 0xfffffff8 broadcast 203.0.113.7",),
    )
    assert render_ifconfig([carp0]) == (
        "carp0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
        "\tlladdr 00:00:5e:00:01:0a\n"
        "\tdescription: WAN VIP\n"
        "\tindex 7 priority 15 llprio 3\n"
        "\tcarp: MASTER carpdev em0 vhid 10 advbase 1 advskew 0\n"
        "\tgroups: carp\n"
        "\tstatus: master\n"
        "\tinet 203.0.113.1 netmask 0xfffffff8 broadcast 203.0.113.7\n"
    )
    multi = CarpInfo(
        carpdev="em0",
        advbase=1,
        nodes=(CarpNode(1, "MASTER", 0), CarpNode(2, "BACKUP", 100)),
        balancing="ip",
    )
    assert render_ifconfig([Interface("carp1", 0, (), 0, carp=multi)]) == (
        "carp1: flags=0<>\n"
        "\tcarp: carpdev em0 advbase 1 balancing ip\n"
        "\t\tstate MASTER vhid 1 advskew 0\n"
        "\t\tstate BACKUP vhid 2 advskew 100\n"
    )
    pfsync0 = Interface(
        "pfsync0",
        0x41,
        ("UP", "RUNNING"),
        1500,
        pfsync=PfsyncInfo("em2", 128, defer=False),
        groups=("carp", "pfsync"),
    )
    assert render_ifconfig([pfsync0]) == (
        "pfsync0: flags=41<UP,RUNNING> mtu 1500\n"
        "\tpfsync: syncdev: em2 maxupd: 128 defer: off\n"
        "\tgroups: carp pfsync\n"
    )
    assert render_group("carp", 0) == "carp: carp demote count 0\n"
    assert render_sysctl({"net.inet.carp.allow": 1, "net.inet.carp.preempt": 0}) == (
        "net.inet.carp.allow=1\nnet.inet.carp.preempt=0\n"
    )


def test_render_omits_what_ifconfig_omits() -> None:
    bare = Interface(
        "carp9",
        0,
        (),
        0,
        rdomain=0,
        lladdr="",
        description="",
        carp=CarpInfo(None, 1, ()),
        groups=(),
        media="",
        status="",
    )
    assert render_ifconfig([bare]) == "carp9: flags=0<>\n"
    assert render_ifconfig([]) == ""


def _ignored(line: str) -> bool:
    return " scopeid 0x" in line or line.startswith(
        ("\thwfeatures", "\tkeepalive:", "\ttrunk:", "\tsupported", "\t\tmedia", "\tnd6", "\tfrob")
    )


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_roundtrip(name: str) -> None:
    text = (DATA / name).read_text()
    assert "\t" in text
    assert "    " not in text  # indentation is tabs
    parsed = parse_ifconfig(text)
    rendered = render_ifconfig(parsed)
    if name in WITH_IGNORED_LINES:
        kept = "".join(line for line in text.splitlines(keepends=True) if not _ignored(line))
        assert kept != text
        assert rendered == kept
        assert parse_ifconfig(rendered) == parsed
    else:
        assert rendered == text


def test_every_fixture_is_listed() -> None:
    assert len(FIXTURES) >= 14
    assert set(FIXTURES) >= WITH_IGNORED_LINES
