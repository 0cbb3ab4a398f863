"""The OpenBSD host adapter: the one module of carpd-py that changes the system.

Reads cost a constant number of processes whatever the number of interfaces: one `ifconfig`,
one `ifconfig -g GROUP` per group of interest, one `sysctl net.inet.carp` (the sysctl values
and the group counters are cached between reads that do not ask for them). Every command
runs under `platform.command_timeout`.

Set commands refuse an interface that the last read did not show: on OpenBSD,
`ifconfig carp9 advskew 240` for a missing carp9 silently creates it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import trio

from .config import PlatformConfig
from .excgroup import leaves
from .misread import merge
from .model import HostView, Interface
from .parse import ParseError, parse_group, parse_ifconfig, parse_sysctl
from .run import Completed, RunTimeout, run

IFNAME = re.compile(r"[a-z]+[0-9]+\Z")
GROUPNAME = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_]*[A-Za-z_])?\Z")  # may not end in a digit
ADVSKEW_MAX = 254
CARPDEMOTE_MAX = 128


class HostError(Exception):
    """A command on the host failed; carries the argv and what it printed on stderr."""

    def __init__(self, message: str, argv: Sequence[str] = (), stderr: str = "") -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.stderr = stderr.strip()

    @property
    def kind(self) -> str:
        """A short label for logs and the `carpd_command_errors_total` metric."""
        return _KINDS.get(type(self), "failed")


class MissingInterface(HostError):
    """The interface is not there (or was not there at the last read)."""


class NotPermitted(HostError):
    """The kernel said EPERM: setting carp parameters needs root."""


class CommandTimeout(HostError):
    """The command did not answer within its deadline; its process group was killed."""


class Unparsable(HostError):
    """The command succeeded but printed what we cannot read."""


class CommandFailed(HostError):
    """Any other failure: non-zero exit, or the program could not be started."""


_KINDS: dict[type[HostError], str] = {
    MissingInterface: "missing",
    NotPermitted: "not_permitted",
    CommandTimeout: "timeout",
    Unparsable: "unparsable",
    CommandFailed: "failed",
}


def _classify(done: Completed) -> HostError:
    err = done.stderr.strip()
    cmd = " ".join(done.argv)
    if err.endswith("no such interface"):
        return MissingInterface(f"{cmd}: {err}", done.argv, err)
    if "Operation not permitted" in err:
        return NotPermitted(f"{cmd}: {err} (carpd-py must run as root)", done.argv, err)
    return CommandFailed(f"{cmd}: exit {done.returncode}: {err or 'no message'}", done.argv, err)


def _first(exc: Exception) -> HostError | None:
    """The first failure of commands run at once (trio groups them), when all are HostError."""
    errors = [e for e in leaves(exc) if isinstance(e, HostError)]
    return errors[0] if errors and len(errors) == len(leaves(exc)) else None


class OpenBSDHost:
    def __init__(self, platform: PlatformConfig, groups: Sequence[str] = ("carp",)) -> None:
        for g in groups:
            if not GROUPNAME.match(g):
                raise ValueError(f"invalid interface group name {g!r}")
        self.platform = platform
        self.groups = tuple(dict.fromkeys(groups))
        self.last: HostView | None = None
        self._sysctl: Mapping[str, int] = {}
        self._demote: dict[str, int] | None = None  # the group counters last read
        self.commands_run = 0  # processes spawned, for metrics and benchmarks

    async def _run(self, argv: Sequence[str]) -> Completed:
        self.commands_run += 1
        try:
            return await run(argv, self.platform.command_timeout)
        except RunTimeout as exc:
            raise CommandTimeout(str(exc), argv) from None
        except OSError as exc:
            raise CommandFailed(f"{argv[0]}: cannot run: {exc.strerror}", argv) from None

    async def _read_ok(self, argv: Sequence[str]) -> str:
        done = await self._run(argv)
        if done.returncode != 0:
            raise _classify(done)
        return done.stdout

    # --- reading -------------------------------------------------------------------------

    async def _read_ifconfig(self, out: dict[str, object]) -> None:
        argv = (self.platform.ifconfig,)
        text = await self._read_ok(argv)
        if not text.strip():
            # ifconfig always lists lo0 at least: empty output is a failed read, not a host
            # without interfaces (which would read as pfsync0 missing).
            raise Unparsable(f"{argv[0]}: empty output", argv)
        try:
            out["ifconfig"] = parse_ifconfig(text)
        except ParseError as exc:
            raise Unparsable(f"{argv[0]}: {exc}", argv) from None

    async def _read_group(self, group: str, out: dict[str, int]) -> None:
        argv = (self.platform.ifconfig, "-g", group)
        done = await self._run(argv)
        if done.returncode != 0:
            if "SIOCGIFGATTR" in done.stderr:
                return  # no such group (yet): no interface is a member
            raise _classify(done)
        try:
            name, count = parse_group(done.stdout)
        except ParseError as exc:
            raise Unparsable(f"{' '.join(argv)}: {exc}", argv) from None
        out[name] = count

    async def _read_sysctl(self) -> None:
        argv = (self.platform.sysctl, "net.inet.carp")
        text = await self._read_ok(argv)
        try:
            self._sysctl = parse_sysctl(text)
        except ParseError as exc:
            raise Unparsable(f"{' '.join(argv)}: {exc}", argv) from None

    async def _read_one(self, name: str, out: dict[str, Interface | None]) -> None:
        if not IFNAME.match(name):
            out[name] = None  # not a name ifconfig can be asked about: its absence is believed
            return
        argv = (self.platform.ifconfig, name)
        done = await self._run(argv)
        if done.returncode != 0:
            error = _classify(done)
            if isinstance(error, MissingInterface):
                out[name] = None  # "NAME: no such interface": really gone
                return
            raise error
        try:
            found = parse_ifconfig(done.stdout)
        except ParseError as exc:
            raise Unparsable(f"{' '.join(argv)}: {exc}", argv) from None
        if len(found) != 1 or found[0].name != name:
            shown = ", ".join(i.name for i in found) or "nothing"
            raise Unparsable(f"{' '.join(argv)}: printed {shown}", argv)
        out[name] = found[0]

    async def reread(self, view: HostView, names: Sequence[str]) -> HostView:
        """Read some interfaces again, one `ifconfig NAME` each, all at once: `view` with
        what they show now (one that is not there any more is left out). See misread.py."""
        found: dict[str, Interface | None] = {}
        try:
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(self._read_one, name, found)
        except Exception as exc:
            first = _first(exc)
            if first is None:
                raise
            raise first from None
        merged = merge(view, {n: found[n] for n in names})
        self.last = merged
        return merged

    async def read(self, *, sysctl: bool = True, groups: bool = True) -> HostView:
        """One read of the host. With sysctl=False the last sysctl values are reused, with
        groups=False the last group counters (`read_groups` reads them alone)."""
        found: dict[str, object] = {}
        demote: dict[str, int] = {}
        groups = groups or self._demote is None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_ifconfig, found)
                if groups:
                    for group in self.groups:
                        nursery.start_soon(self._read_group, group, demote)
                if sysctl or not self._sysctl:
                    nursery.start_soon(self._read_sysctl)
        except Exception as exc:
            # The commands run at once; the caller wants the first failure, not trio's group.
            first = _first(exc)
            if first is None:
                raise
            raise first from None
        interfaces = found["ifconfig"]
        assert isinstance(interfaces, tuple)
        if groups:
            self._demote = demote
        assert self._demote is not None
        view = HostView(
            interfaces=interfaces, group_demote=dict(self._demote), sysctl=dict(self._sysctl)
        )
        self.last = view
        return view

    async def read_groups(self) -> dict[str, int]:
        """The demote counter of each group of interest: one `ifconfig -g GROUP` each."""
        demote: dict[str, int] = {}
        try:
            async with trio.open_nursery() as nursery:
                for group in self.groups:
                    nursery.start_soon(self._read_group, group, demote)
        except Exception as exc:
            first = _first(exc)
            if first is None:
                raise
            raise first from None
        self._demote = demote
        if self.last is not None:
            self.last = HostView(self.last.interfaces, dict(demote), self.last.sysctl)
        return dict(demote)

    # --- changing ------------------------------------------------------------------------

    def _seen(self, name: str) -> Interface:
        if not IFNAME.match(name):
            raise MissingInterface(f"{name!r} is not an interface name")
        iface = self.last.get(name) if self.last is not None else None
        if iface is None:
            raise MissingInterface(
                f"{name}: not in the last read of the host; refusing to touch it "
                "(ifconfig would create it)"
            )
        return iface

    async def set_advskew(self, name: str, skews: Mapping[int, int]) -> None:
        """Set the advskew of some vhids of a carp interface the last read showed.

        One vhid: `ifconfig carpN advskew S`. Several: `ifconfig carpN carpnodes v:s,...`
        with every vhid of the interface, the ones not named keeping their last-read value.
        """
        iface = self._seen(name)
        if iface.carp is None:
            raise MissingInterface(f"{name}: has no carp vhid in the last read")
        current = {n.vhid: n.advskew for n in iface.carp.nodes}
        unknown = sorted(set(skews) - set(current))
        if unknown:
            raise MissingInterface(f"{name}: no vhid {unknown[0]} in the last read")
        for vhid, skew in skews.items():
            if not 0 <= skew <= ADVSKEW_MAX:
                raise ValueError(f"{name} vhid {vhid}: advskew {skew} out of range 0..254")
        if not skews:
            return
        if not iface.carp.multi:
            (skew,) = skews.values()
            argv: tuple[str, ...] = (self.platform.ifconfig, name, "advskew", str(skew))
        else:
            merged = {**current, **skews}
            nodes = ",".join(f"{vhid}:{skew}" for vhid, skew in merged.items())
            argv = (self.platform.ifconfig, name, "carpnodes", nodes)
        await self._read_ok(argv)

    async def carpdemote(self, group: str, delta: int) -> None:
        """Add (delta > 0) or take away (delta < 0) our share of a group's demote counter."""
        if not GROUPNAME.match(group):
            raise MissingInterface(f"{group!r} is not a group name")
        if self.last is None or group not in self.last.group_demote:
            raise MissingInterface(f"group {group}: not in the last read of the host")
        if delta == 0 or abs(delta) > CARPDEMOTE_MAX:
            raise ValueError(f"carpdemote {delta}: out of range")
        word = "carpdemote" if delta > 0 else "-carpdemote"
        await self._read_ok((self.platform.ifconfig, "-g", group, word, str(abs(delta))))
