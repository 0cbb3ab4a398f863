"""OpenBSD routing socket messages: decoded (the daemon) and encoded (the simulated host). Pure.

The layouts are those of sys/net/route.h and sys/net/if.h today (RTM_VERSION 5), native byte
order, as the kernel writes them on amd64 (`rtm_ifchg()`, `rtm_ifannounce()` and
`rtm_senddesync()` in sys/net/rtsock.c):

    struct if_msghdr {            offset  size
        u_short ifm_msglen;        0      2   to skip over non-understood messages
        u_char  ifm_version;       2      1   RTM_VERSION
        u_char  ifm_type;          3      1   RTM_IFINFO
        u_short ifm_hdrlen;        4      2   sizeof(struct if_msghdr)
        u_short ifm_index;         6      2
        u_short ifm_tableid;       8      2
        u_char  ifm_pad1, ifm_pad2;10     2
        int     ifm_addrs;        12      4
        int     ifm_flags;        16      4   if_flags (IFF_UP, IFF_RUNNING, ...)
        int     ifm_xflags;       20      4
        struct if_data ifm_data;  24    144   8-aligned (u_int64_t members)
    };                                  168

    struct if_data {
        u_char ifi_type, ifi_addrlen, ifi_hdrlen, ifi_link_state;      0   4
        u_int32_t ifi_mtu, ifi_metric, ifi_rdomain;                   4  12
        u_int64_t ifi_baudrate, 12 counters (ipackets .. noproto);   16  104
        u_int32_t ifi_capabilities;                                 120   4  (+4 padding)
        struct timeval ifi_lastchange;                              128  16  (time_t, long)
    };                                                                   144

    struct if_announcemsghdr {    msglen, version, type, hdrlen, index (as above), then
        u_short ifan_what;         8      2   IFAN_ARRIVAL 0, IFAN_DEPARTURE 1
        char ifan_name[IFNAMSIZ]; 10     16
    };                                   26

`RTM_DESYNC` is a bare `struct rt_msghdr` (96 bytes): the socket's buffer overflowed and
messages were lost, so everything must be read again.

A datagram from the routing socket holds whole messages, each prefixed by its length; a type
this module does not know is skipped by `msglen`. A wrong version, a length that runs past
the datagram, or a message shorter than its header raises `RtMsgError` (the caller reads the
whole host again: a message it cannot read may have been the one that mattered).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTM_VERSION = 5
RTM_MAXSIZE = 2048  # sys/net/route.h: the largest message route_output() accepts
RTM_IFINFO = 0x0E
RTM_IFANNOUNCE = 0x0F
RTM_DESYNC = 0x10

ROUTE_MSGFILTER = 1  # setsockopt(fd, AF_ROUTE, ROUTE_MSGFILTER, &u_int, 4)


def route_filter(*types: int) -> int:
    """ROUTE_FILTER(m): the ROUTE_MSGFILTER bitmask for these message types."""
    mask = 0
    for t in types:
        mask |= 1 << t
    return mask


IFAN_ARRIVAL = 0
IFAN_DEPARTURE = 1
IFNAMSIZ = 16

# sys/net/if.h, values for if_link_state
LINK_STATE_UNKNOWN = 0
LINK_STATE_INVALID = 1
LINK_STATE_DOWN = 2
LINK_STATE_KALIVE_DOWN = 3
LINK_STATE_UP = 4
LINK_STATE_HALF_DUPLEX = 5
LINK_STATE_FULL_DUPLEX = 6


def link_state_is_up(state: int) -> bool:
    """LINK_STATE_IS_UP(): up, half or full duplex, or unknown (a link that does not say)."""
    return state >= LINK_STATE_UP or state == LINK_STATE_UNKNOWN


# The common prefix of every routing message: msglen, version, type.
_PREFIX = struct.Struct("=HBB")
# if_msghdr up to ifm_data: msglen version type hdrlen index tableid pad1 pad2 addrs flags xflags
_IFM = struct.Struct("=HBBHHHBBiii")
# if_data: type addrlen hdrlen link_state mtu metric rdomain baudrate, 12 counters,
# capabilities, 4 bytes of padding, ifi_lastchange (tv_sec, tv_usec)
_IFDATA = struct.Struct("=BBBBIIIQ12QI4xqq")
_IFAN = struct.Struct("=HBBHHH16s")
IF_MSGHDR_LEN = _IFM.size + _IFDATA.size  # 168
IF_ANNOUNCEMSGHDR_LEN = _IFAN.size  # 26
RT_MSGHDR_LEN = 96  # struct rt_msghdr: 40 bytes of header, struct rt_metrics (56)
assert _IFM.size == 24
assert _IFDATA.size == 144
assert IF_MSGHDR_LEN == 168
assert IF_ANNOUNCEMSGHDR_LEN == 26


class RtMsgError(ValueError):
    """A routing message that cannot be read; the message says why."""


@dataclass(frozen=True)
class IfInfo:
    """RTM_IFINFO: an interface's flags or link state changed (carp: MASTER is up)."""

    index: int
    flags: int
    link_state: int
    ifi_type: int = 0
    mtu: int = 0
    rdomain: int = 0

    @property
    def link_up(self) -> bool:
        return link_state_is_up(self.link_state)


@dataclass(frozen=True)
class IfAnnounce:
    """RTM_IFANNOUNCE: an interface was created (arrival) or destroyed (departure)."""

    index: int
    name: str
    arrival: bool


@dataclass(frozen=True)
class Desync:
    """RTM_DESYNC: messages were lost; read everything again."""


Message = IfInfo | IfAnnounce | Desync


def decode(data: bytes) -> list[Message]:
    """Every message in one datagram that carpd-py understands, in order."""
    out: list[Message] = []
    view = memoryview(data)
    at = 0
    while at < len(view):
        if len(view) - at < _PREFIX.size:
            raise RtMsgError(f"truncated: {len(view) - at} bytes left, a header needs 4")
        msglen, version, kind = _PREFIX.unpack_from(view, at)
        if msglen < _PREFIX.size:
            raise RtMsgError(f"message length {msglen} is shorter than its header")
        if msglen > RTM_MAXSIZE:
            raise RtMsgError(f"message length {msglen} is over RTM_MAXSIZE ({RTM_MAXSIZE})")
        if at + msglen > len(view):
            raise RtMsgError(f"truncated: message length {msglen}, {len(view) - at} bytes read")
        if version != RTM_VERSION:
            raise RtMsgError(f"version {version}, expected RTM_VERSION {RTM_VERSION}")
        body = view[at : at + msglen]
        at += msglen
        if kind == RTM_IFINFO:
            out.append(_ifinfo(body))
        elif kind == RTM_IFANNOUNCE:
            out.append(_ifannounce(body))
        elif kind == RTM_DESYNC:
            out.append(Desync())
        # any other type: skipped by its length
    return out


def _ifinfo(body: memoryview) -> IfInfo:
    if len(body) < IF_MSGHDR_LEN:
        raise RtMsgError(f"RTM_IFINFO of {len(body)} bytes, struct if_msghdr is {IF_MSGHDR_LEN}")
    _, _, _, hdrlen, index, _, _, _, _, flags, _ = _IFM.unpack_from(body, 0)
    if not IF_MSGHDR_LEN <= hdrlen <= len(body):
        raise RtMsgError(f"RTM_IFINFO header length {hdrlen} out of range")
    ifi_type, _, _, link_state, mtu, _, rdomain, *_ = _IFDATA.unpack_from(body, _IFM.size)
    return IfInfo(index, flags & 0xFFFFFFFF, link_state, ifi_type, mtu, rdomain)


def _ifannounce(body: memoryview) -> IfAnnounce:
    if len(body) < IF_ANNOUNCEMSGHDR_LEN:
        raise RtMsgError(
            f"RTM_IFANNOUNCE of {len(body)} bytes, struct if_announcemsghdr is "
            f"{IF_ANNOUNCEMSGHDR_LEN}"
        )
    _, _, _, _, index, what, raw = _IFAN.unpack_from(body, 0)
    name = bytes(raw).split(b"\0", 1)[0].decode("ascii", "replace")
    return IfAnnounce(index, name, what == IFAN_ARRIVAL)


# --- encoding: what the simulated kernel writes ---------------------------------------------


def encode_ifinfo(
    index: int,
    flags: int,
    link_state: int,
    *,
    ifi_type: int = 0,
    mtu: int = 0,
    rdomain: int = 0,
    lastchange: float = 0.0,
) -> bytes:
    """rtm_ifchg(): one RTM_IFINFO message, ifm_addrs 0, counters 0."""
    head = _IFM.pack(IF_MSGHDR_LEN, RTM_VERSION, RTM_IFINFO, IF_MSGHDR_LEN, index, 0, 0, 0, 0,
                     flags, 0)  # fmt: skip
    sec = int(lastchange)
    data = _IFDATA.pack(ifi_type, 0, 0, link_state, mtu, 0, rdomain, 0, *([0] * 12), 0, sec,
                        int((lastchange - sec) * 1e6))  # fmt: skip
    return head + data


def encode_ifannounce(index: int, name: str, arrival: bool) -> bytes:
    """rtm_ifannounce(): one RTM_IFANNOUNCE message."""
    raw = name.encode("ascii")[: IFNAMSIZ - 1]
    what = IFAN_ARRIVAL if arrival else IFAN_DEPARTURE
    return _IFAN.pack(IF_ANNOUNCEMSGHDR_LEN, RTM_VERSION, RTM_IFANNOUNCE, IF_ANNOUNCEMSGHDR_LEN,
                      index, what, raw)  # fmt: skip


def encode_desync() -> bytes:
    """rtm_senddesync(): a bare rt_msghdr of type RTM_DESYNC."""
    head = _PREFIX.pack(RT_MSGHDR_LEN, RTM_VERSION, RTM_DESYNC)
    return head + struct.pack("=H", RT_MSGHDR_LEN) + bytes(RT_MSGHDR_LEN - 6)
