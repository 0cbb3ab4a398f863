"""Read OpenBSD `relayctl show summary` / `show hosts` output and relayd.conf's listen lines.

Pure functions, no I/O. The format is usr.sbin/relayctl/relayctl.c: main() prints the header
`printf("%-4s\\t%-8s\\t%-24s\\t%-7s\\tStatus\\n", "Id", "Type", "Name", "Avlblty")`, then
show_summary_msg() one line per object in the same `%-4u\\t%-8s\\t%-24s\\t%-7s\\t%s` shape, in
the order relayd's control.c sends them: a redirect or relay, then its tables, each followed
by its hosts. A host's name is `NAME` or `NAME parent N`; its availability is
`print_availability()`'s `%.2f%%` (empty before the first check), its status
print_host_status(): `up`, `down`, `unknown` or `disabled`. A table's status is
print_table_status(): `active (N hosts)`, `empty` or `disabled`. `show hosts` adds, under a
checked host, an indented `total: N/M checks[, N retries][, error: ...]` line (skipped here).
Relay tables carry the check port: `web_backends:80`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "RelaydError",
    "RelaydHost",
    "RelaydSummary",
    "RelaydTable",
    "Service",
    "hosts_up",
    "parse_listen",
    "parse_summary",
]

HEADER = "Id  \tType    \tName                    \tAvlblty\tStatus"


class RelaydError(ValueError):
    """relayctl output that could not be read; the message names the line."""


@dataclass(frozen=True)
class RelaydHost:
    id: int
    name: str  # without " parent N"
    availability: str  # "100.00%" or ""
    status: str  # "up", "down", "unknown", "disabled"

    @property
    def up(self) -> bool:
        return self.status == "up"


@dataclass(frozen=True)
class RelaydTable:
    id: int
    name: str  # "web_backends:80" for a relay's table, "web_backends" for a redirect's
    status: str
    hosts: tuple[RelaydHost, ...] = ()

    @property
    def base(self) -> str:
        """The table's name as relayd.conf writes it (without the `:port` of a relay table)."""
        return self.name.rpartition(":")[0] if re.search(r":[0-9]+$", self.name) else self.name


@dataclass(frozen=True)
class Service:
    """A relay, a redirect or a router, with its tables."""

    id: int
    type: str  # "relay", "redirect", "router"
    name: str
    status: str  # "active", "down", "disabled", ...
    tables: tuple[RelaydTable, ...] = ()


@dataclass(frozen=True)
class RelaydSummary:
    services: tuple[Service, ...]

    def tables(self) -> tuple[RelaydTable, ...]:
        return tuple(t for s in self.services for t in s.tables)


_LINE = re.compile(
    r"(?P<id>[0-9]+) *\t(?P<type>\S+) *\t(?P<name>.*?) *\t(?P<avail>[0-9.]*%?) *\t(?P<status>.+)"
)


def parse_summary(text: str) -> RelaydSummary:
    """`relayctl show summary` or `show hosts`, grouped: services, their tables, their hosts."""
    lines = text.splitlines()
    if not lines or lines[0].split() != ["Id", "Type", "Name", "Avlblty", "Status"]:
        shown = lines[0] if lines else ""
        raise RelaydError(f"line 1: expected the relayctl header 'Id Type Name ...', not {shown!r}")
    services: list[Service] = []
    tables: list[RelaydTable] = []
    hosts: list[RelaydHost] = []

    def close_table() -> None:
        if tables:
            tables[-1] = RelaydTable(tables[-1].id, tables[-1].name, tables[-1].status,
                                     tuple(hosts))  # fmt: skip
        hosts.clear()

    def close_service() -> None:
        close_table()
        if services:
            last = services[-1]
            services[-1] = Service(last.id, last.type, last.name, last.status, tuple(tables))
        tables.clear()

    orphan = Service(0, "none", "", "")
    for number, line in enumerate(lines[1:], 2):
        if not line.strip() or line.startswith("\t"):
            continue  # statistics and check totals under an entry
        m = _LINE.fullmatch(line)
        if m is None:
            raise RelaydError(f"line {number}: not a relayctl summary line: {line!r}")
        kind, ident, status = m["type"], int(m["id"]), m["status"].strip()
        name = re.sub(r" parent [0-9]+$", "", m["name"])
        if kind in ("relay", "redirect", "router"):
            close_service()
            services.append(Service(ident, kind, name, status))
        elif kind == "table":
            close_table()
            if not services:
                services.append(orphan)
            tables.append(RelaydTable(ident, name, status))
        elif kind == "host":
            if not tables:
                raise RelaydError(f"line {number}: a host before any table: {line!r}")
            hosts.append(RelaydHost(ident, name, m["avail"], status))
        else:
            raise RelaydError(f"line {number}: unknown type {kind!r}")
    close_service()
    return RelaydSummary(tuple(services))


def hosts_up(
    summary: RelaydSummary, *, relay: str | None = None, table: str | None = None
) -> tuple[int, int] | None:
    """(hosts up, hosts) in the named relay (or redirect) or table; None if it is not there.

    A table is named as in relayd.conf (`web_backends`) or as relayctl prints it
    (`web_backends:80`); a host in two tables of the relay counts once per table.
    """
    if relay is not None:
        found = [s for s in summary.services if s.name == relay and s.type != "none"]
        if not found:
            return None
        chosen = [t for s in found for t in s.tables]
    else:
        chosen = [t for t in summary.tables() if table in (t.name, t.base)]
        if not chosen:
            return None
    seen = [h for t in chosen for h in t.hosts]
    return sum(h.up for h in seen), len(seen)


_MACRO = re.compile(
    r'\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*"?(?P<value>[^"#\n]*?)"?\s*(?:#.*)?'
)
_SERVICE = re.compile(r'\s*(?P<kind>relay|redirect)\s+"?(?P<name>[^"{\s]+)"?\s*\{?')
_LISTEN = re.compile(r"\s*listen on (?P<addr>\S+)(?: port (?P<port>\S+))?")


def parse_listen(text: str) -> Mapping[str, tuple[str, ...]]:
    """The addresses each relay (or redirect) of relayd.conf(5) listens on, macros expanded.

    Only what `listen on ADDRESS` lines say; `$name` macros defined as `name = "value"` are
    expanded, an interface name is kept as written.
    """
    macros: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        m = _MACRO.fullmatch(line)
        if m and current is None:
            macros[m["name"]] = m["value"].strip()
            continue
        s = _SERVICE.match(line)
        if s:
            current = s["name"]
            out.setdefault(current, [])
            continue
        listen = _LISTEN.match(line)
        if listen and current is not None:
            addr = listen["addr"]
            if addr.startswith("$"):
                addr = macros.get(addr[1:], addr)
            out[current].append(addr)
        if line.strip() == "}":
            current = None
    return {k: tuple(v) for k, v in out.items()}
