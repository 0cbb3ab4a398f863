"""parse.py against the fixtures in tests/data/ifconfig: each whole parsed Interface, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd_py.model import CarpInfo, CarpNode, Interface, PfsyncInfo
from carpd_py.parse import ParseError, parse_group, parse_ifconfig, parse_sysctl

DATA = Path(__file__).parent / "data" / "ifconfig"

ETHER = ("UP", "BROADCAST", "RUNNING", "SIMPLEX", "MULTICAST")
GIGABIT = "Ethernet autoselect (1000baseT full-duplex)"


def fixture(name: str) -> tuple[Interface, ...]:
    return parse_ifconfig((DATA / name).read_text())


def handbook(
    *, state: str, advskew: int, status: str, last: int, mac: str, sync: str
) -> tuple[Interface, ...]:
    """The handbook node: A is MASTER advskew 0, B is BACKUP advskew 100."""
    return (
        Interface(
            name="em0",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr=f"00:0c:29:{mac}:01",
            description="WAN",
            index=1,
            priority=0,
            llprio=3,
            groups=("egress",),
            media=GIGABIT,
            status="active",
            inet=(f"203.0.113.{last} netmask 0xfffffff8 broadcast 203.0.113.7",),
        ),
        Interface(
            name="em1",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr=f"00:0c:29:{mac}:02",
            description="LAN",
            index=2,
            priority=0,
            llprio=3,
            media=GIGABIT,
            status="active",
            inet=(f"192.168.1.{last} netmask 0xffffff00 broadcast 192.168.1.255",),
        ),
        Interface(
            name="em2",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr=f"00:0c:29:{mac}:03",
            description="pfsync",
            index=3,
            priority=0,
            llprio=3,
            media=GIGABIT,
            status="active",
            inet=(f"{sync} netmask 0xfffffffc broadcast 10.255.255.3",),
        ),
        Interface(
            name="enc0",
            flags=0,
            flag_names=(),
            mtu=0,
            index=4,
            priority=0,
            llprio=3,
            groups=("enc",),
            status="active",
        ),
        Interface(
            name="lo0",
            flags=0x8049,
            flag_names=("UP", "LOOPBACK", "RUNNING", "MULTICAST"),
            mtu=32768,
            index=5,
            priority=0,
            llprio=3,
            groups=("lo",),
            inet=("::1 prefixlen 128", "127.0.0.1 netmask 0xff000000"),
        ),
        Interface(
            name="pfsync0",
            flags=0x41,
            flag_names=("UP", "RUNNING"),
            mtu=1500,
            index=6,
            priority=0,
            llprio=3,
            pfsync=PfsyncInfo(syncdev="em2", maxupd=128, defer=False),
            groups=("carp", "pfsync"),
        ),
        Interface(
            name="carp0",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr="00:00:5e:00:01:0a",
            description="WAN VIP",
            index=7,
            priority=15,
            llprio=3,
            carp=CarpInfo(carpdev="em0", advbase=1, nodes=(CarpNode(10, state, advskew),)),
            groups=("carp",),
            status=status,
            inet=("203.0.113.1 netmask 0xfffffff8 broadcast 203.0.113.7",),
        ),
        Interface(
            name="carp1",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr="00:00:5e:00:01:14",
            description="LAN VIP",
            index=8,
            priority=15,
            llprio=3,
            carp=CarpInfo(carpdev="em1", advbase=1, nodes=(CarpNode(20, state, advskew),)),
            groups=("carp",),
            status=status,
            inet=("192.168.1.1 netmask 0xffffff00 broadcast 192.168.1.255",),
        ),
    )


def test_handbook_node_a() -> None:
    assert fixture("handbook_a.txt") == handbook(
        state="MASTER", advskew=0, status="master", last=2, mac="aa:bb", sync="10.255.255.1"
    )


def test_handbook_node_b() -> None:
    assert fixture("handbook_b.txt") == handbook(
        state="BACKUP", advskew=100, status="backup", last=3, mac="cc:dd", sync="10.255.255.2"
    )


def test_carp_multi_vhid_balancing_ip() -> None:
    assert fixture("carp_multi_ip.txt") == (
        Interface(
            name="carp2",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr="01:00:5e:00:01:01",
            index=9,
            priority=15,
            llprio=3,
            carp=CarpInfo(
                carpdev="em1",
                advbase=1,
                nodes=(CarpNode(1, "MASTER", 0), CarpNode(2, "BACKUP", 100)),
                balancing="ip",
            ),
            groups=("carp",),
            status="master",
            inet=("192.168.1.10 netmask 0xffffff00 broadcast 192.168.1.255",),
        ),
    )


def test_carp_multi_vhid_with_carppeer() -> None:
    assert fixture("carp_multi_carppeer.txt") == (
        Interface(
            name="carp3",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr="00:00:5e:00:01:03",
            index=10,
            priority=15,
            llprio=3,
            carp=CarpInfo(
                carpdev="em0",
                advbase=2,
                nodes=(
                    CarpNode(3, "BACKUP", 100),
                    CarpNode(4, "BACKUP", 100),
                    CarpNode(5, "INIT", 0),
                ),
                balancing="ip-unicast",
                carppeer="10.255.255.2",
            ),
            groups=("carp", "wan"),
            status="backup",
            inet=("203.0.113.4 netmask 0xfffffff8 broadcast 203.0.113.7",),
        ),
    )


def test_carp_init_status_invalid() -> None:
    assert fixture("carp_init_invalid.txt") == (
        Interface(
            name="carp4",
            flags=0x8803,
            flag_names=("UP", "BROADCAST", "SIMPLEX", "MULTICAST"),
            mtu=1500,
            lladdr="00:00:5e:00:01:1e",
            index=11,
            priority=15,
            llprio=3,
            carp=CarpInfo(carpdev="em3", advbase=1, nodes=(CarpNode(30, "INIT", 0),)),
            groups=("carp",),
            status="invalid",
            inet=("198.51.100.1 netmask 0xffffff00 broadcast 198.51.100.255",),
        ),
    )


def test_carp_carpdev_none() -> None:
    assert fixture("carp_carpdev_none.txt") == (
        Interface(
            name="carp5",
            flags=0x8802,
            flag_names=("BROADCAST", "SIMPLEX", "MULTICAST"),
            mtu=1500,
            lladdr="00:00:5e:00:01:28",
            index=12,
            priority=15,
            llprio=3,
            carp=CarpInfo(carpdev=None, advbase=1, nodes=(CarpNode(40, "INIT", 0),)),
            groups=("carp",),
            status="invalid",
        ),
    )


def test_carp_without_vhid_has_no_carp_info() -> None:
    (iface,) = fixture("carp_no_vhid.txt")
    assert iface == Interface(
        name="carp6",
        flags=0x8802,
        flag_names=("BROADCAST", "SIMPLEX", "MULTICAST"),
        mtu=1500,
        lladdr="00:00:00:00:00:00",
        index=13,
        priority=15,
        llprio=3,
        groups=("carp",),
        status="invalid",
    )
    assert iface.is_carp
    assert not iface.up


def test_pfsync_without_syncdev() -> None:
    assert fixture("pfsync_no_syncdev.txt") == (
        Interface(
            name="pfsync0",
            flags=0,
            flag_names=(),
            mtu=1500,
            index=6,
            priority=0,
            llprio=3,
            groups=("carp", "pfsync"),
        ),
    )


def test_pfsync_with_syncpeer_and_defer() -> None:
    assert fixture("pfsync_syncpeer.txt") == (
        Interface(
            name="pfsync0",
            flags=0x41,
            flag_names=("UP", "RUNNING"),
            mtu=1500,
            index=6,
            priority=0,
            llprio=3,
            pfsync=PfsyncInfo(syncdev="em2", maxupd=128, defer=True, syncpeer="10.255.255.2"),
            groups=("carp", "pfsync"),
        ),
    )


def test_physical_without_carrier() -> None:
    assert fixture("em2_no_carrier.txt") == (
        Interface(
            name="em2",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            lladdr="00:0c:29:aa:bb:03",
            description="pfsync",
            index=3,
            priority=0,
            llprio=3,
            media="Ethernet autoselect (none)",
            status="no carrier",
            inet=("10.255.255.1 netmask 0xfffffffc broadcast 10.255.255.3",),
        ),
    )


def test_no_media_and_no_status() -> None:
    assert fixture("no_media_no_status.txt") == (
        Interface(
            name="pflog0",
            flags=0x141,
            flag_names=("UP", "RUNNING", "PROMISC"),
            mtu=33136,
            index=14,
            priority=0,
            llprio=3,
            groups=("pflog",),
        ),
    )


def test_description_with_spaces_and_colons() -> None:
    (iface,) = fixture("description_spaces.txt")
    assert iface == Interface(
        name="em0",
        flags=0x8843,
        flag_names=ETHER,
        mtu=1500,
        lladdr="00:0c:29:aa:bb:01",
        description="WAN uplink: ISP A (fibre, 1 Gbit/s)",
        index=1,
        priority=0,
        llprio=3,
        groups=("egress",),
        media=GIGABIT,
        status="active",
        inet=("203.0.113.2 netmask 0xfffffff8 broadcast 203.0.113.7",),
    )


def test_rdomain_in_header() -> None:
    assert fixture("rdomain.txt") == (
        Interface(
            name="em3",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            rdomain=1,
            lladdr="00:0c:29:aa:bb:04",
            index=4,
            priority=0,
            llprio=3,
            media=GIGABIT,
            status="active",
            inet=("198.51.100.2 netmask 0xffffff00 broadcast 198.51.100.255",),
        ),
    )


def test_unknown_lines_are_ignored() -> None:
    assert fixture("unknown_lines.txt") == (
        Interface(
            name="em1",
            flags=0x8B43,
            flag_names=(
                "UP",
                "BROADCAST",
                "RUNNING",
                "PROMISC",
                "ALLMULTI",
                "SIMPLEX",
                "MULTICAST",
            ),
            mtu=1500,
            lladdr="00:0c:29:aa:bb:02",
            index=2,
            priority=0,
            llprio=3,
            groups=("lan",),
            media=GIGABIT,
            status="active",
            inet=("2001:db8::2 prefixlen 64",),
        ),
    )


# --- inline variants -------------------------------------------------------------------------


def test_empty_text() -> None:
    assert parse_ifconfig("") == ()
    assert parse_ifconfig("\n") == ()


def test_single_vhid_unknown_state_and_carppeer() -> None:
    text = (
        "carp7: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
        "\tcarp: <UNKNOWN> carpdev em0 vhid 50 advbase 2 advskew 50 carppeer 10.255.255.2\n"
    )
    assert parse_ifconfig(text) == (
        Interface(
            name="carp7",
            flags=0x8843,
            flag_names=ETHER,
            mtu=1500,
            carp=CarpInfo(
                carpdev="em0",
                advbase=2,
                nodes=(CarpNode(50, "<UNKNOWN>", 50),),
                carppeer="10.255.255.2",
            ),
        ),
    )


def test_header_variants() -> None:
    """flags in hex up to the xflags, metric read and dropped, mtu 0 not printed."""
    text = (
        "vio0: flags=a48843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,INET6_NOSOII,AUTOCONF6,"
        "AUTOCONF4> rdomain 3 metric 2 mtu 9000\n"
        "bridge0: flags=41<UP,RUNNING>\n"
        "\tindex 9 llprio 3\n"
    )
    assert parse_ifconfig(text) == (
        Interface(
            name="vio0",
            flags=0xA48843,
            flag_names=(*ETHER, "INET6_NOSOII", "AUTOCONF6", "AUTOCONF4"),
            mtu=9000,
            rdomain=3,
        ),
        Interface(
            name="bridge0", flags=0x41, flag_names=("UP", "RUNNING"), mtu=0, index=9, llprio=3
        ),
    )


def test_status_keepalive_down_and_unknown_link_state() -> None:
    text = (
        "gre0: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1476\n"
        "\tstatus: keepalive down\n"
        "tun0: flags=51<UP,POINTOPOINT,RUNNING> mtu 1500\n"
        "\tstatus: [#7]\n"
    )
    assert [(i.name, i.status) for i in parse_ifconfig(text)] == [
        ("gre0", "keepalive down"),
        ("tun0", "[#7]"),
    ]


@pytest.mark.parametrize(
    ("text", "lineno", "fragment"),
    [
        ("garbage\n", 1, "'garbage'"),
        ("em0: flags=8843<UP mtu 1500\n", 1, "'em0: flags=8843<UP mtu 1500'"),
        ("em0: flags=zz<UP> mtu 1500\n", 1, "flags=zz"),
        ("em0: flags=8843<UP> mtu 1500 extra\n", 1, "extra"),
        ("\tlladdr 00:00:00:00:00:01\n", 1, "before any interface header"),
        ("carp0: flags=0<>\n  index 7\n", 2, "'  index 7'"),
        (
            "carp0: flags=8843<UP> mtu 1500\n\tcarp: MASTER carpdev em0 vhid 10 advbase 1\n",
            2,
            "'\\tcarp: MASTER carpdev em0 vhid 10 advbase 1'",
        ),
        (
            "carp0: flags=8843<UP> mtu 1500\n"
            "\tcarp: SLAVE carpdev em0 vhid 1 advbase 1 advskew 0\n",
            2,
            "SLAVE",
        ),
        ("carp0: flags=0<>\n\tcarp: MASTER vhid 1 advbase 1 advskew 0\n", 2, "carp:"),
        (
            "carp0: flags=0<>\n\tcarp: carpdev em0 advbase 1 balancing ip\n"
            "\t\tstate MASTER vhid 1 advskew 0\n\t\tstate BACKUP vhid 2\n",
            4,
            "'\\t\\tstate BACKUP vhid 2'",
        ),
        (
            "carp0: flags=0<>\n\tcarp: carpdev em0 advbase 1 balancing ip\n"
            "\t\tstate MASTER vhid 1 advskew 0\n\tgroups: carp\n",
            2,
            "at least 2 vhid lines",
        ),
        (
            "carp0: flags=0<>\n\tcarp: carpdev em0 advbase 1 balancing ip\n",
            2,
            "at least 2 vhid lines",
        ),
        ("pfsync0: flags=41<UP,RUNNING> mtu 1500\n\tpfsync: syncdev: em2\n", 2, "pfsync:"),
        (
            "pfsync0: flags=41<UP,RUNNING> mtu 1500\n\tpfsync: syncdev: em2 maxupd: 128\n",
            2,
            "maxupd: 128",
        ),
    ],
)
def test_parse_errors_name_the_line(text: str, lineno: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_ifconfig(text)
    message = str(info.value)
    assert message.startswith(f"line {lineno}: ")
    assert fragment in message
    assert info.value.lineno == lineno
    assert isinstance(info.value, ValueError)


def test_parse_error_keeps_the_line_text() -> None:
    with pytest.raises(ParseError) as info:
        parse_ifconfig("em0: flags=8843<UP> mtu 1500\n\tcarp: MASTER\n")
    assert info.value.line == "\tcarp: MASTER"


# --- ifconfig -g and sysctl ------------------------------------------------------------------


def test_parse_group() -> None:
    assert parse_group("carp: carp demote count 0\n") == ("carp", 0)
    assert parse_group("uplinks: carp demote count 33\n") == ("uplinks", 33)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "carp: carp demote count\n",
        "carp: carp demote count x\n",
        "ifconfig: carp: SIOCGIFGATTR: Invalid argument\n",
        "carp: carp demote count 1\ncarp: carp demote count 2\n",
    ],
)
def test_parse_group_errors(text: str) -> None:
    with pytest.raises(ParseError, match=r"^line \d+: "):
        parse_group(text)


def test_parse_sysctl() -> None:
    text = (
        "net.inet.carp.allow=1\n"
        "net.inet.carp.preempt=0\n"
        "net.inet.carp.log=2\n"
        "net.inet.carp.stats=ipackets 0, ipackets6 0\n"
        "\n"
    )
    assert parse_sysctl(text) == {
        "net.inet.carp.allow": 1,
        "net.inet.carp.preempt": 0,
        "net.inet.carp.log": 2,
    }
    assert parse_sysctl("") == {}


def test_parse_sysctl_skips_non_integers() -> None:
    assert parse_sysctl("net.inet.carp.stats=\nnet.inet.carp.x=1.5\nnet.inet.carp.y=-3\n") == {
        "net.inet.carp.y": -3
    }


@pytest.mark.parametrize(
    ("text", "lineno"),
    [
        ("net.inet.carp.allow: 1\n", 1),
        ("net.inet.carp.allow=1\nnet.inet.carp.preempt: 0 -> 1\n", 2),
        ("=1\n", 1),
    ],
)
def test_parse_sysctl_errors(text: str, lineno: int) -> None:
    with pytest.raises(ParseError, match=rf"^line {lineno}: "):
        parse_sysctl(text)


# --- issue 9: values ifconfig can never print, output cut short ----------------------------
# ip_carp.c carp_ioctl() SIOCSVH refuses advskew >= 255 and vhid outside 1..255 (EINVAL), so
# ifconfig.c carp_status() can never print them: such a line is a misread, never a value.


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("\tcarp: MASTER carpdev em0 vhid 10 advbase 1 advskew 255", "advskew 255"),
        ("\tcarp: MASTER carpdev em0 vhid 10 advbase 1 advskew 1000", "advskew 1000"),
        ("\tcarp: MASTER carpdev em0 vhid 0 advbase 1 advskew 0", "vhid 0"),
        ("\tcarp: MASTER carpdev em0 vhid 256 advbase 1 advskew 0", "vhid 256"),
    ],
)
def test_impossible_vhid_or_advskew_is_a_parse_error(line: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_ifconfig(f"carp0: flags=8843<UP> mtu 1500\n{line}\n")
    assert fragment in str(info.value)
    assert info.value.lineno == 2


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ("state BACKUP vhid 2 advskew 255", "advskew 255"),
        ("state BACKUP vhid 0 advskew 1", "vhid 0"),
    ],
)
def test_impossible_value_in_a_carpnodes_line_is_a_parse_error(node: str, fragment: str) -> None:
    text = (
        "carp0: flags=0<>\n\tcarp: carpdev em0 advbase 1 balancing ip\n"
        f"\t\tstate MASTER vhid 1 advskew 0\n\t\t{node}\n"
    )
    with pytest.raises(ParseError) as info:
        parse_ifconfig(text)
    assert fragment in str(info.value)


def test_extreme_legal_values_are_read() -> None:
    (iface,) = parse_ifconfig(
        "carp0: flags=8843<UP> mtu 1500\n"
        "\tcarp: BACKUP carpdev em0 vhid 255 advbase 1 advskew 254\n"
    )
    assert iface.carp is not None
    assert iface.carp.nodes == (CarpNode(255, "BACKUP", 254),)


@pytest.mark.parametrize(
    "text",
    [
        "em2: flags=8843<UP> mtu 1500\n\tstatus: no car",
        "em2: flags=8843<UP> mtu 1500\n\tstatus: active",  # the newline is part of the line
        "em2: flags=8843<UP> mtu 1500",
    ],
)
def test_output_that_does_not_end_with_a_newline_was_cut_short(text: str) -> None:
    """Every line ifconfig.c prints ends in a newline (printf("\\n") in status()): output
    that does not is a cut-short read, not an interface whose status is 'no car'."""
    with pytest.raises(ParseError, match="cut short"):
        parse_ifconfig(text)
