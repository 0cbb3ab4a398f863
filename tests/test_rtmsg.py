"""The routing message decoder, on byte strings built from OpenBSD's header layouts.

Layouts: struct if_msghdr, struct if_data, struct if_announcemsghdr (sys/net/if.h), struct
rt_msghdr, RTM_VERSION 5, RTM_IFINFO 0xe, RTM_IFANNOUNCE 0xf, RTM_DESYNC 0x10, ROUTE_MSGFILTER 1,
ROUTE_FILTER(m) (sys/net/route.h); the kernel fills them in rtm_ifchg(), rtm_ifannounce() and
rtm_senddesync() (sys/net/rtsock.c). carp_set_state() (sys/netinet/ip_carp.c) sets the carp
interface's link state: MASTER LINK_STATE_UP, BACKUP LINK_STATE_DOWN, INIT
LINK_STATE_INVALID. Every field is named below; native byte order, amd64 sizes and alignment.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from carpd_py import rtmsg
from carpd_py.rtmsg import Desync, IfAnnounce, IfInfo, RtMsgError, decode

IFT_ETHER = 0x06
IFT_CARP = 0xF7
IFF_UP, IFF_BROADCAST, IFF_RUNNING, IFF_SIMPLEX, IFF_MULTICAST = 0x1, 0x2, 0x40, 0x800, 0x8000


def if_data(*, ifi_type: int, ifi_link_state: int, ifi_mtu: int = 1500) -> bytes:
    """struct if_data (sys/net/if.h), 144 bytes on amd64."""
    fields = [
        ("B", ifi_type),  # u_char ifi_type
        ("B", 6),  # u_char ifi_addrlen
        ("B", 14),  # u_char ifi_hdrlen
        ("B", ifi_link_state),  # u_char ifi_link_state
        ("I", ifi_mtu),  # u_int32_t ifi_mtu
        ("I", 0),  # u_int32_t ifi_metric
        ("I", 0),  # u_int32_t ifi_rdomain
        ("Q", 1_000_000_000),  # u_int64_t ifi_baudrate
        ("Q", 11),  # u_int64_t ifi_ipackets
        ("Q", 0),  # u_int64_t ifi_ierrors
        ("Q", 12),  # u_int64_t ifi_opackets
        ("Q", 0),  # u_int64_t ifi_oerrors
        ("Q", 0),  # u_int64_t ifi_collisions
        ("Q", 1234),  # u_int64_t ifi_ibytes
        ("Q", 5678),  # u_int64_t ifi_obytes
        ("Q", 0),  # u_int64_t ifi_imcasts
        ("Q", 0),  # u_int64_t ifi_omcasts
        ("Q", 0),  # u_int64_t ifi_iqdrops
        ("Q", 0),  # u_int64_t ifi_oqdrops
        ("Q", 0),  # u_int64_t ifi_noproto
        ("I", 0x7),  # u_int32_t ifi_capabilities
        ("4x", None),  # padding: struct timeval is 8-aligned
        ("q", 1_700_000_000),  # ifi_lastchange.tv_sec (time_t)
        ("q", 250_000),  # ifi_lastchange.tv_usec (long)
    ]
    return _pack(fields)


def _pack(fields: Sequence[tuple[str, int | bytes | None]]) -> bytes:
    fmt = "=" + "".join(f for f, _ in fields)
    return struct.pack(fmt, *(v for _, v in fields if v is not None))


def if_msghdr(
    *,
    ifm_index: int,
    ifm_flags: int,
    ifi_link_state: int,
    ifi_type: int = IFT_ETHER,
    ifm_version: int = 5,
    ifm_msglen: int | None = None,
    extra: bytes = b"",
) -> bytes:
    """struct if_msghdr (sys/net/if.h): 24 bytes, then struct if_data at offset 24."""
    data = if_data(ifi_type=ifi_type, ifi_link_state=ifi_link_state)
    size = 24 + len(data) + len(extra)
    head = _pack([
        ("H", size if ifm_msglen is None else ifm_msglen),  # u_short ifm_msglen
        ("B", ifm_version),  # u_char ifm_version (RTM_VERSION)
        ("B", 0x0E),  # u_char ifm_type (RTM_IFINFO)
        ("H", 168),  # u_short ifm_hdrlen (sizeof(struct if_msghdr))
        ("H", ifm_index),  # u_short ifm_index
        ("H", 0),  # u_short ifm_tableid
        ("B", 0),  # u_char ifm_pad1
        ("B", 0),  # u_char ifm_pad2
        ("i", 0),  # int ifm_addrs
        ("i", ifm_flags),  # int ifm_flags
        ("i", 0),  # int ifm_xflags
    ])  # fmt: skip
    return head + data + extra


def if_announcemsghdr(*, ifan_index: int, ifan_what: int, ifan_name: bytes) -> bytes:
    """struct if_announcemsghdr (sys/net/if.h): 26 bytes."""
    return _pack([
        ("H", 26),  # u_short ifan_msglen
        ("B", 5),  # u_char ifan_version
        ("B", 0x0F),  # u_char ifan_type (RTM_IFANNOUNCE)
        ("H", 26),  # u_short ifan_hdrlen
        ("H", ifan_index),  # u_short ifan_index
        ("H", ifan_what),  # u_short ifan_what (IFAN_ARRIVAL 0, IFAN_DEPARTURE 1)
        ("16s", ifan_name),  # char ifan_name[IFNAMSIZ]
    ])  # fmt: skip


def rt_msghdr(*, rtm_type: int, rtm_version: int = 5) -> bytes:
    """struct rt_msghdr (sys/net/route.h): 40 bytes, then struct rt_metrics (56)."""
    head = _pack([
        ("H", 96),  # u_short rtm_msglen
        ("B", rtm_version),  # u_char rtm_version
        ("B", rtm_type),  # u_char rtm_type
        ("H", 96),  # u_short rtm_hdrlen
        ("H", 0),  # u_short rtm_index
        ("H", 0),  # u_short rtm_tableid
        ("B", 0),  # u_char rtm_priority
        ("B", 0),  # u_char rtm_mpls
        ("i", 0),  # int rtm_addrs
        ("i", 0),  # int rtm_flags
        ("i", 0),  # int rtm_fmask
        ("i", 0),  # pid_t rtm_pid
        ("i", 0),  # int rtm_seq
        ("i", 0),  # int rtm_errno
        ("I", 0),  # u_int rtm_inits
    ])  # fmt: skip
    metrics = _pack([
        ("Q", 0),  # u_int64_t rmx_pksent
        ("q", 0),  # int64_t rmx_expire
        *[("I", 0)] * 10,  # rmx_locks mtu refcnt hopcount recvpipe sendpipe ssthresh rtt rttvar pad
    ])  # fmt: skip
    assert len(head) == 40
    assert len(metrics) == 56
    return head + metrics


def test_layout_sizes_match_openbsd_amd64() -> None:
    assert len(if_data(ifi_type=IFT_ETHER, ifi_link_state=4)) == 144
    assert rtmsg.IF_MSGHDR_LEN == len(if_msghdr(ifm_index=1, ifm_flags=0, ifi_link_state=0)) == 168
    assert rtmsg.IF_ANNOUNCEMSGHDR_LEN == 26
    assert rtmsg.RTM_VERSION == 5
    assert (rtmsg.RTM_IFINFO, rtmsg.RTM_IFANNOUNCE, rtmsg.RTM_DESYNC) == (0xE, 0xF, 0x10)
    assert rtmsg.ROUTE_MSGFILTER == 1
    assert rtmsg.route_filter(rtmsg.RTM_IFINFO, rtmsg.RTM_IFANNOUNCE) == (1 << 14) | (1 << 15)


def test_ifinfo_of_a_carrier_loss() -> None:
    # em2 (index 3) lost its carrier: still UP and RUNNING, LINK_STATE_DOWN
    flags = IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_SIMPLEX | IFF_MULTICAST
    (msg,) = decode(if_msghdr(ifm_index=3, ifm_flags=flags, ifi_link_state=2))
    assert msg == IfInfo(index=3, flags=flags, link_state=2, ifi_type=IFT_ETHER, mtu=1500)
    assert isinstance(msg, IfInfo)
    assert not msg.link_up


def test_link_states_as_ifconfig_names_them() -> None:
    # LINK_STATE_IS_UP(): UP, HALF_DUPLEX, FULL_DUPLEX and UNKNOWN count as up
    ups = {s: rtmsg.link_state_is_up(s) for s in range(7)}
    assert ups == {0: True, 1: False, 2: False, 3: False, 4: True, 5: True, 6: True}
    # carp MASTER: LINK_STATE_UP ("master"), BACKUP: LINK_STATE_DOWN ("backup")
    (master,) = decode(if_msghdr(ifm_index=7, ifm_flags=0x8843, ifi_link_state=4,
                                 ifi_type=IFT_CARP))  # fmt: skip
    assert isinstance(master, IfInfo)
    assert master.link_up
    assert master.ifi_type == IFT_CARP


def test_ifannounce_arrival_and_departure() -> None:
    msgs = decode(
        if_announcemsghdr(ifan_index=9, ifan_what=0, ifan_name=b"carp2")
        + if_announcemsghdr(ifan_index=9, ifan_what=1, ifan_name=b"carp2")
    )
    assert msgs == [IfAnnounce(9, "carp2", True), IfAnnounce(9, "carp2", False)]


def test_desync() -> None:
    assert decode(rt_msghdr(rtm_type=0x10)) == [Desync()]


def test_unknown_types_are_skipped_by_msglen() -> None:
    # RTM_NEWADDR (0xc) and RTM_80211INFO (0x15), then the one that matters
    data = rt_msghdr(rtm_type=0x0C) + rt_msghdr(rtm_type=0x15)
    data += if_msghdr(ifm_index=2, ifm_flags=0, ifi_link_state=4)
    assert [type(m) for m in decode(data)] == [IfInfo]


def test_a_longer_message_of_a_later_kernel_is_read_by_its_header() -> None:
    # ifm_msglen counts fields a newer if_msghdr might append: skipped, the next one is read
    data = if_msghdr(ifm_index=2, ifm_flags=1, ifi_link_state=4, extra=b"\xff" * 8)
    data += if_announcemsghdr(ifan_index=4, ifan_what=1, ifan_name=b"em1")
    assert decode(data) == [
        IfInfo(2, 1, 4, IFT_ETHER, 1500, 0),
        IfAnnounce(4, "em1", False),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (if_msghdr(ifm_index=1, ifm_flags=0, ifi_link_state=2)[:100], "truncated"),
        (if_msghdr(ifm_index=1, ifm_flags=0, ifi_link_state=2, ifm_msglen=100)[:100],
         "struct if_msghdr is 168"),
        (b"\x10\x00", "truncated"),
        (if_msghdr(ifm_index=1, ifm_flags=0, ifi_link_state=2, ifm_version=3),
         "expected RTM_VERSION 5"),
        (if_msghdr(ifm_index=1, ifm_flags=0, ifi_link_state=2, ifm_msglen=4096), "RTM_MAXSIZE"),
        (struct.pack("=HBB", 2, 5, 0x0E), "shorter than its header"),
        (if_announcemsghdr(ifan_index=1, ifan_what=0, ifan_name=b"em0")[:20], "truncated"),
    ],
)  # fmt: skip
def test_bad_messages_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(RtMsgError, match=message):
        decode(data)


def test_encoders_write_what_the_layouts_say() -> None:
    flags = IFF_UP | IFF_RUNNING
    built = if_msghdr(ifm_index=3, ifm_flags=flags, ifi_link_state=2)
    encoded = rtmsg.encode_ifinfo(3, flags, 2, ifi_type=IFT_ETHER, mtu=1500)
    assert len(encoded) == len(built) == 168
    assert encoded[:24] == built[:24]  # the whole if_msghdr head, field for field
    assert encoded[24] == built[24] == IFT_ETHER  # ifi_type
    assert encoded[27] == built[27] == 2  # ifi_link_state
    assert encoded[28:36] == built[28:36]  # ifi_mtu, ifi_metric
    assert rtmsg.encode_ifannounce(9, "carp2", True) == if_announcemsghdr(
        ifan_index=9, ifan_what=0, ifan_name=b"carp2"
    )
    assert decode(rtmsg.encode_desync()) == [Desync()]
    assert rtmsg.encode_desync()[:4] == rt_msghdr(rtm_type=0x10)[:4]
