"""Read OpenBSD `ifconfig`, `ifconfig -g GROUP` and `sysctl net.inet.carp` output into the model.

Pure functions, no I/O. The formats are those of sbin/ifconfig/ifconfig.c as written down in the
OpenBSD reference: a header line per interface, then lines indented with one tab; the per-vhid
lines of a multi-vhid carp interface are indented with two. Unknown lines inside a block are
skipped; a header, `carp:` or `pfsync:` line that does not match the format raises `ParseError`.
`carpd_py.sim.render` is the exact inverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .model import CarpInfo, CarpNode, Interface, PfsyncInfo

__all__ = ["ParseError", "parse_group", "parse_ifconfig", "parse_sysctl"]

_INT = r"[0-9]+"  # [0-9], not \d: str patterns would accept any Unicode digit
_IPV4 = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
_STATE = r"INIT|BACKUP|MASTER|<UNKNOWN>"

# name: flags=8843<UP,BROADCAST,...>[ rdomain N][ metric N][ mtu N]   (mtu 0 is not printed)
_HEADER = re.compile(
    r"(?P<name>[^\s:]+): flags=(?P<flags>[0-9a-f]+)"
    r"<(?P<names>(?:[^<>,\s]+(?:,[^<>,\s]+)*)?)>"
    rf"(?: rdomain (?P<rdomain>{_INT}))?(?: metric {_INT})?(?: mtu (?P<mtu>{_INT}))?"
)
# index N priority N llprio N; ifconfig.c prints each part only when it knows it.
_INDEX = re.compile(
    rf"\t(?:index (?P<index>{_INT}))?"
    rf"(?:(?:(?<=[0-9]) |(?<=\t))priority (?P<priority>-?{_INT}))?"
    rf"(?:(?:(?<=[0-9]) |(?<=\t))llprio (?P<llprio>{_INT}))?"
)
_CARP_ONE = re.compile(
    rf"\tcarp: (?P<state>{_STATE}) carpdev (?P<dev>\S+) vhid (?P<vhid>{_INT})"
    rf" advbase (?P<advbase>{_INT}) advskew (?P<advskew>{_INT})"
    rf"(?: carppeer (?P<peer>{_IPV4}))?"
)
_CARP_MANY = re.compile(
    rf"\tcarp: carpdev (?P<dev>\S+) advbase (?P<advbase>{_INT})"
    rf" balancing (?P<balancing>\S+)(?: carppeer (?P<peer>{_IPV4}))?"
)
_CARP_NODE = re.compile(
    rf"\t\tstate (?P<state>{_STATE}) vhid (?P<vhid>{_INT}) advskew (?P<advskew>{_INT})"
)
_PFSYNC = re.compile(
    rf"\tpfsync: syncdev: (?P<dev>\S+) (?:syncpeer: (?P<peer>{_IPV4}) )?"
    rf"maxupd: (?P<maxupd>{_INT}) defer: (?P<defer>on|off)"
)
_GROUP = re.compile(rf"(?P<name>[^\s:]+): carp demote count (?P<count>-?{_INT})")
_SIGNED = re.compile(rf"-?{_INT}")

_CARP_FORMAT = "STATE carpdev DEV vhid N advbase N advskew N[ carppeer A.B.C.D]"
# ip_carp.c carp_ioctl() (SIOCSVH) refuses a vhid outside 1..255 and an advskew of 255 or more:
# ifconfig can never print them, so a line that shows one is a misread, never a value to keep.
VHID_MAX = 255
ADVSKEW_MAX = 254
_PFSYNC_FORMAT = "syncdev: DEV [syncpeer: A.B.C.D ]maxupd: N defer: on|off"


class ParseError(ValueError):
    """Output that could not be read. The message names the line: its number and its text."""

    def __init__(self, message: str, *, lineno: int | None = None, line: str | None = None):
        super().__init__(message)
        self.lineno = lineno
        self.line = line


def _error(lineno: int, line: str, reason: str) -> ParseError:
    return ParseError(f"line {lineno}: {reason}: {line!r}", lineno=lineno, line=line)


def _node(m: re.Match[str], lineno: int, line: str) -> CarpNode:
    vhid, advskew = int(m["vhid"]), int(m["advskew"])
    if not 1 <= vhid <= VHID_MAX:
        raise _error(lineno, line, f"vhid {vhid} out of range 1..{VHID_MAX}")
    if advskew > ADVSKEW_MAX:
        raise _error(lineno, line, f"advskew {advskew} out of range 0..{ADVSKEW_MAX}")
    return CarpNode(vhid=vhid, state=m["state"], advskew=advskew)


def _none_if(value: str, missing: str) -> str | None:
    return None if value == missing else value


class _Block:
    """The interface being read; turned into a frozen `Interface` when its block ends."""

    __slots__ = (
        "carp",
        "carp_head",
        "carp_line",
        "carp_nodes",
        "description",
        "flag_names",
        "flags",
        "groups",
        "index",
        "inet",
        "lladdr",
        "llprio",
        "media",
        "mtu",
        "name",
        "pfsync",
        "priority",
        "rdomain",
        "status",
    )

    def __init__(self, header: re.Match[str]) -> None:
        names = header["names"]
        rdomain = header["rdomain"]
        mtu = header["mtu"]
        self.name: str = header["name"]
        self.flags = int(header["flags"], 16)
        self.flag_names: tuple[str, ...] = tuple(names.split(",")) if names else ()
        self.rdomain = int(rdomain) if rdomain is not None else None
        self.mtu = int(mtu) if mtu is not None else 0
        self.lladdr: str | None = None
        self.description: str | None = None
        self.index: int | None = None
        self.priority: int | None = None
        self.llprio: int | None = None
        self.carp: CarpInfo | None = None
        self.pfsync: PfsyncInfo | None = None
        self.groups: tuple[str, ...] = ()
        self.media: str | None = None
        self.status: str | None = None
        self.inet: list[str] = []
        # A multi-vhid `carp:` line whose `state ... vhid ...` lines are still being read.
        self.carp_head: re.Match[str] | None = None
        self.carp_line = (0, "")
        self.carp_nodes: list[CarpNode] = []

    def close_carp(self) -> None:
        head = self.carp_head
        if head is None:
            return
        if len(self.carp_nodes) < 2:
            lineno, line = self.carp_line
            raise _error(lineno, line, "carp: carpdev line without at least 2 vhid lines")
        self.carp = CarpInfo(
            carpdev=_none_if(head["dev"], "none"),
            advbase=int(head["advbase"]),
            nodes=tuple(self.carp_nodes),
            balancing=head["balancing"],
            carppeer=head["peer"],
        )
        self.carp_head = None
        self.carp_nodes = []

    def build(self) -> Interface:
        self.close_carp()
        return Interface(
            name=self.name,
            flags=self.flags,
            flag_names=self.flag_names,
            mtu=self.mtu,
            rdomain=self.rdomain,
            lladdr=self.lladdr,
            description=self.description,
            index=self.index,
            priority=self.priority,
            llprio=self.llprio,
            carp=self.carp,
            pfsync=self.pfsync,
            groups=self.groups,
            media=self.media,
            status=self.status,
            inet=tuple(self.inet),
        )


def _lladdr(block: _Block, line: str, lineno: int) -> None:
    block.lladdr = line[8:] or None  # "\tlladdr "


def _description(block: _Block, line: str, lineno: int) -> None:
    block.description = line[14:] or None  # "\tdescription: "


def _index(block: _Block, line: str, lineno: int) -> None:
    m = _INDEX.fullmatch(line)
    if m is None:
        return  # not the line we know: ignored like any other unknown line
    index, priority, llprio = m.group("index", "priority", "llprio")
    block.index = int(index) if index is not None else None
    block.priority = int(priority) if priority is not None else None
    block.llprio = int(llprio) if llprio is not None else None


def _carp(block: _Block, line: str, lineno: int) -> None:
    block.close_carp()
    m = _CARP_ONE.fullmatch(line)
    if m is not None:
        node = _node(m, lineno, line)
        block.carp = CarpInfo(
            carpdev=_none_if(m["dev"], "none"),
            advbase=int(m["advbase"]),
            nodes=(node,),
            carppeer=m["peer"],
        )
        return
    m = _CARP_MANY.fullmatch(line)
    if m is None:
        raise _error(lineno, line, f"carp: line is not '{_CARP_FORMAT}' nor the carpnodes form")
    block.carp_head = m
    block.carp_line = (lineno, line)


def _carp_node(block: _Block, line: str, lineno: int) -> None:
    m = _CARP_NODE.fullmatch(line)
    if m is None:
        raise _error(lineno, line, "carp vhid line is not 'state STATE vhid N advskew N'")
    block.carp_nodes.append(_node(m, lineno, line))


def _pfsync(block: _Block, line: str, lineno: int) -> None:
    m = _PFSYNC.fullmatch(line)
    if m is None:
        raise _error(lineno, line, f"pfsync: line is not '{_PFSYNC_FORMAT}'")
    block.pfsync = PfsyncInfo(
        syncdev=m["dev"],
        maxupd=int(m["maxupd"]),
        defer=m["defer"] == "on",
        syncpeer=m["peer"],
    )


def _groups(block: _Block, line: str, lineno: int) -> None:
    block.groups = tuple(line[9:].split())  # "\tgroups: "


def _media(block: _Block, line: str, lineno: int) -> None:
    block.media = line[8:] or None  # "\tmedia: "


def _status(block: _Block, line: str, lineno: int) -> None:
    block.status = line[9:] or None  # "\tstatus: "


def _inet(block: _Block, line: str, lineno: int) -> None:
    block.inet.append(line[6:])  # "\tinet "


def _inet6(block: _Block, line: str, lineno: int) -> None:
    text = line[7:]  # "\tinet6 "
    if " scopeid 0x" not in text:  # link-local addresses are not kept
        block.inet.append(text)


_Handler = Callable[[_Block, str, int], None]

# Keyed by the first word after the tab; any other word is an ignored line.
_HANDLERS: dict[str, _Handler] = {
    "lladdr": _lladdr,
    "description:": _description,
    "index": _index,
    "priority": _index,
    "llprio": _index,
    "carp:": _carp,
    "pfsync:": _pfsync,
    "groups:": _groups,
    "media:": _media,
    "status:": _status,
    "inet": _inet,
    "inet6": _inet6,
}


def parse_ifconfig(text: str) -> tuple[Interface, ...]:
    """Read the output of `ifconfig`, `ifconfig NAME` or `ifconfig GROUP`.

    Every line ifconfig prints ends in a newline: text that does not was cut short (a pipe
    closed early, a killed process), and its last line cannot be trusted.
    """
    if text and not text.endswith("\n"):
        last = text.rsplit("\n", 1)[-1]
        raise _error(text.count("\n") + 1, last, "output cut short: the last line has no newline")
    interfaces: list[Interface] = []
    block: _Block | None = None
    handlers = _HANDLERS
    in_description = False  # ifconfig prints a description raw: it may hold newlines
    blanks = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            blanks += 1
            continue
        if line[0] != "\t":
            header = _HEADER.fullmatch(line)
            if header is None and in_description and block is not None:
                block.description = (block.description or "") + "\n" * (blanks + 1) + line
                blanks = 0
                continue
            in_description = False
            blanks = 0
            if block is not None:
                interfaces.append(block.build())
            if header is None:
                raise _error(lineno, line, "not an interface header 'NAME: flags=X<...> mtu N'")
            block = _Block(header)
            continue
        in_description = line.startswith("\tdescription: ")
        blanks = 0
        if block is None:
            raise _error(lineno, line, "indented line before any interface header")
        if line[1:2] == "\t":
            if block.carp_head is not None:
                _carp_node(block, line, lineno)
            continue  # other two-tab lines (supported media, trunk ports, ...) are ignored
        if block.carp_head is not None:
            block.close_carp()
        space = line.find(" ")
        handler = handlers.get(line[1:space] if space > 0 else line[1:])
        if handler is not None:
            handler(block, line, lineno)
    if block is not None:
        interfaces.append(block.build())
    return tuple(interfaces)


def parse_group(text: str) -> tuple[str, int]:
    """Read `ifconfig -g GROUP`: "carp: carp demote count 3" -> ("carp", 3)."""
    found: tuple[str, int] | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if found is not None:
            raise _error(lineno, line, "more than one group line")
        m = _GROUP.fullmatch(line)
        if m is None:
            raise _error(lineno, line, "not 'GROUP: carp demote count N'")
        found = (m["name"], int(m["count"]))
    if found is None:
        raise _error(1, text, "no 'GROUP: carp demote count N' line")
    return found


def parse_sysctl(text: str) -> dict[str, int]:
    """Read `sysctl net.inet.carp`: "net.inet.carp.preempt=1" lines; non-integer values skipped."""
    values: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep or not name:
            raise _error(lineno, line, "not 'name=value'")
        if _SIGNED.fullmatch(value):
            values[name] = int(value)
    return values
