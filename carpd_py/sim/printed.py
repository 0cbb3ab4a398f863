"""What each node prints, kept in the state file at every change; the read-only commands.

Every write of the state file also stores, per node, each interface's `ifconfig` block as
`render.py` prints it, the groups with their members and demote counters, and the sysctl
values. A read-only `ifconfig` or `sysctl` run (what carpd-py does on every read) then loads
only that (marshal, see store.py); this module imports nothing, so those runs start fast. The
write path uses the same functions, on a snapshot made from the live state, so there is one
implementation of what ifconfig prints and how it fails.

As printif() in sbin/ifconfig/ifconfig.c r1.476: a name that does not end in a digit is a group
if the group exists (its members are printed), else a prefix (`em` prints em0, em1, ...); a
missing interface prints `NAME: no such interface` on stderr and exits 1.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the executables start fast
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .state import Node

IFNAMSIZ = 16
CLONERS = ("carp", "enc", "lo", "pfsync")
USAGE = (
    "usage: ifconfig [-AaC] [-M lladdr] [interface] [address_family]\n"
    "\t\t[address [dest_address]] [parameters]\n"
)
_AFS = ("inet", "inet6")
_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789"


class Result:
    """What a simulated command printed and its exit status."""

    __slots__ = ("code", "stderr", "stdout")

    def __init__(self, code: int, stdout: str = "", stderr: str = "") -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return (self.code, self.stdout, self.stderr) == (other.code, other.stdout, other.stderr)

    def __hash__(self) -> int:
        return hash((self.code, self.stdout, self.stderr))

    def __repr__(self) -> str:
        return f"Result(code={self.code!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def strtonum(text: str, lo: int, hi: int) -> tuple[int, str | None]:
    """strtonum(3): the value, or the error string the programs print ("too large", ...)."""
    stripped = text.lstrip(_SPACE)
    digits = stripped[1:] if stripped[:1] in ("+", "-") else stripped
    if lo > hi or not digits or any(c not in _DIGITS for c in digits):
        return 0, "invalid"
    value = int(stripped)
    if value < lo:
        return 0, "too small"
    if value > hi:
        return 0, "too large"
    return value, None


def ifconfig_writes(args: Sequence[str]) -> bool:
    """Whether this ifconfig command line may change the system (so needs the write path)."""
    if not args:
        return False
    rest = list(args)
    if rest[0].startswith("-"):
        opts = rest.pop(0)[1:]
        if any(c in "aAC" for c in opts) or "g" not in opts:
            return False
        return len(rest) > 1  # -g GROUP carpdemote ...
    rest = rest[1:]
    if rest and rest[0] in _AFS:
        rest = rest[1:]
    return bool(rest)


def printed_node(node: Node) -> dict[str, Any]:
    """The snapshot of one node kept in the state file (rendered with render.py)."""
    # Only the write path renders; the read path must not import the model (dataclasses).
    from .render import render_group, render_ifconfig, render_sysctl  # noqa: PLC0415
    from .state import ETHER  # noqa: PLC0415
    from .view import interface, sysctl_values  # noqa: PLC0415

    members: dict[str, list[str]] = {"all": [], "carp": []}
    blocks = []
    for iface in node.interfaces:
        blocks.append([iface.name, render_ifconfig([interface(node, iface)])])
        members["all"].append(iface.name)
        for g in iface.groups:
            members.setdefault(g, []).append(iface.name)
    groups = {
        g: [names, render_group(g, node.group_demote.get(g, 0))] for g, names in members.items()
    }
    values = sysctl_values(node)
    out = {
        "blocks": blocks,
        "groups": groups,
        "sysctl": {k.rpartition(".")[2]: v for k, v in values.items()},
        "sysctl_text": render_sysctl(values),
        "hang": node.hang,
        "garbage": node.garbage,
        "truncate": node.truncate,
        "unprivileged": node.unprivileged,
    }
    if node.carrier_from is not None:  # see carrier.py: the read path compares these
        out["carrier_from"] = node.carrier_from
        out["carriers"] = {i.name: i.carrier for i in node.interfaces if i.kind == ETHER}
    return out


class Printed:
    """The read side of one node: its printed blocks, groups and sysctl values."""

    __slots__ = ("blocks", "groups", "sysctl", "sysctl_text")

    def __init__(self, data: dict[str, Any]) -> None:
        self.blocks: list[list[str]] = data["blocks"]
        self.groups: dict[str, list[Any]] = data["groups"]  # name: [members, -g line]
        self.sysctl: dict[str, int] = data["sysctl"]  # allow, preempt, log
        self.sysctl_text: str = data["sysctl_text"]  # `sysctl net.inet.carp`

    def text(self, names: Sequence[str] | None = None, *, aliases: bool = True) -> str:
        if names is None:
            if not aliases:
                return "".join(first_inet_only(text) for _, text in self.blocks)
            return "".join(text for _, text in self.blocks)
        wanted = set(names)
        return "".join(text for name, text in self.blocks if name in wanted)

    def names(self) -> list[str]:
        return [name for name, _ in self.blocks]


def first_inet_only(block: str) -> str:
    """printif(NULL, 0): after the link-level lines, only the first AF_INET address is shown
    (`noinet`); every inet6 address is."""
    out = []
    seen = False
    for line in block.splitlines(keepends=True):
        if line.startswith("\tinet "):
            if seen:
                continue
            seen = True
        out.append(line)
    return "".join(out)


class Exit(Exception):
    """err(3), errx(3) or usage(): the program ends with this result."""

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(stderr)
        self.result = Result(code, "", stderr)


def errx(msg: str) -> Exit:
    return Exit(1, f"ifconfig: {msg}\n")


def parse_options(argv: list[str]) -> tuple[str, bool, bool, bool, list[str]]:
    """main() up to the address family: (ifname, aflag, gflag, Cflag, the rest)."""
    ifname = ""
    aflag = gflag = cflag = False
    if argv and argv[0].startswith("-"):
        nomore = False
        for c in argv[0][1:]:
            if c in "aA":
                aflag = nomore = True
            elif c == "g":
                gflag = True
            elif c == "C":
                cflag = nomore = True
            else:
                raise Exit(1, USAGE)  # -M (findmac) is not modelled either
        argv = argv[1:]
        if not nomore:
            if not argv:
                raise Exit(1, USAGE)
            ifname = argv[0]
            argv = argv[1:]
    elif argv:
        ifname = argv[0]
        argv = argv[1:]
    if len(ifname.encode()) >= IFNAMSIZ:
        raise errx(f"interface name '{ifname}' too long")
    if argv and argv[0] in _AFS:
        argv = argv[1:]
    return ifname, aflag, gflag, cflag, argv


def printif(p: Printed, name: str | None, aliases: bool = True) -> str:
    """The output of `ifconfig [NAME]`; Exit when nothing matches.

    main() runs printif(NULL, ifaliases) for no name (`ifconfig`, `-a`: ifaliases 0, `-A`:
    1), printif(&ifr, 1) for a name or a group.
    """
    if name is None:
        return p.text(aliases=aliases)
    if name and name[-1] not in _DIGITS:
        group = p.groups.get(name)
        if group is not None:
            return p.text(group[0])
        n = len(name)
        chosen = [i for i in p.names() if i.startswith(name) and i[n : n + 1] in _DIGITS]
    else:
        chosen = [name] if name in p.names() else []
    if not chosen or not name:
        raise Exit(1, f"{name}: no such interface\n")
    return p.text(chosen)


def printgroupattribs(p: Printed, group: str) -> str:
    entry = p.groups.get(group)
    if entry is None:
        raise errx(f"{group}: SIOCGIFGATTR: No such file or directory")  # ENOENT
    line: str = entry[1]
    return line


def _read(p: Printed, args: Sequence[str]) -> str:
    ifname, aflag, gflag, cflag, rest = parse_options(list(args))
    if cflag:
        if rest or aflag:
            raise Exit(1, USAGE)
        return " ".join(sorted(CLONERS)) + "\n"
    if not args or aflag:
        return printif(p, None, aliases=bool(args) and "A" in args[0])
    if gflag:
        return printgroupattribs(p, ifname)
    return printif(p, ifname)


def ifconfig_read(p: Printed, args: Sequence[str]) -> Result:
    """A read-only ifconfig run (see `ifconfig_writes`)."""
    try:
        return Result(0, _read(p, args))
    except Exit as e:
        return e.result
