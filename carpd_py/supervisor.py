"""The supervisor: trio wires probes, the decision and the actions, one round per interval.

Every round: probe the sync peer and every upstream group, and read the host when due, all at
once, each under its own deadline; step the hysteresis; call the pure `decide`; persist the new
memory BEFORE any command; run the commands in a shielded scope (an action under way finishes
even when a signal arrives) under a deadline; publish an immutable Status for readers.

With the routing socket open (routesock.py) the host is read when a message says that an
interface that matters changed (interest.py), at once, in a round of its own without probes,
and otherwise every `platform.resync_interval`; without it, every round. A round where nothing
changed (no new read, the same verdicts, nothing pending, nothing new from the peer) decides
nothing and publishes nothing; with a peer it still sends this node's view.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import trio

from . import decide as d
from . import state
from .config import Config, UpstreamConfig
from .host import CommandTimeout, HostError, Unparsable
from .hysteresis import Check, Round, step
from .inspect import warnings as host_warnings
from .interest import Interest, interest, why
from .logsetup import Log
from .misread import CONFIRM_MAX, doubtful
from .model import HostView
from .reports import report, report_restore
from .rounds import (
    SYNC,
    check_names,
    check_params,
    managed_advskews,
    policy_of,
    released_advskews,
    role_changes,
    roles,
    sync_link_problem,
    sync_round,
    upstream_check,
)
from .routesock import RouteSocket, open_route_socket
from .rtmsg import IfInfo, Message, RtMsgError, decode
from .rtview import apply_ifinfo
from .telemetry import Telemetry, TelemetrySnapshot

if TYPE_CHECKING:
    from .pairing import Pairing, PairStatus


class Host(Protocol):
    async def read(self, *, sysctl: bool = True, groups: bool = True) -> HostView: ...
    async def read_groups(self) -> Mapping[str, int]: ...
    async def reread(self, view: HostView, names: Sequence[str]) -> HostView: ...
    async def set_advskew(self, name: str, skews: Mapping[int, int]) -> None: ...
    async def carpdemote(self, group: str, delta: int) -> None: ...


class GroupResult(Protocol):
    @property
    def good(self) -> bool: ...
    @property
    def failed(self) -> tuple[str, ...]: ...
    @property
    def duration(self) -> float: ...
    @property
    def detail(self) -> str: ...


class IcmpResult(Protocol):
    @property
    def peer(self) -> float | None: ...
    @property
    def peer_took(self) -> float: ...
    @property
    def groups(self) -> Sequence[GroupResult]: ...


class Prober(Protocol):
    async def ping(self, address: str, timeout: float) -> float | None: ...
    async def group(self, upstream: UpstreamConfig) -> GroupResult: ...
    async def icmp_round(
        self, peer: tuple[str, float] | None, groups: Sequence[UpstreamConfig]
    ) -> IcmpResult: ...


class Hooks(Protocol):
    def fire(self, event: str, env: Mapping[str, str]) -> None: ...


@dataclass(frozen=True)
class Status:
    """What the supervisor knows after a round; immutable, for metrics and the control socket."""

    config: Config
    started: float
    updated: float | None = None
    view: HostView | None = None
    checks: Mapping[str, Check] = field(default_factory=lambda: MappingProxyType({}))
    details: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    memory: d.Memory = field(default_factory=d.Memory)
    warnings: tuple[str, ...] = ()
    read_error: str | None = None
    telemetry: TelemetrySnapshot = field(default_factory=lambda: Telemetry().snapshot())
    pair: PairStatus | None = None  # None: no [peer], this node decides alone


GRACE = 0.5  # seconds a task may overrun its own deadline before the supervisor gives up on it
MISSING = "the file is missing"  # why the state file must be written again
HEARD_MAX = 256  # routing messages kept for the read in flight (rtview.py)
WRITE_ERROR_EVERY = 60.0  # seconds between two logs of the same state file write failure


def _describe(key: d.VhidKey) -> str:
    return f"{key[0]} vhid {key[1]}"


def _monotonic() -> float:
    """trio's clock (a MockClock in tests), or the system's monotonic clock outside trio."""
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()


def _action(effect: d.Effect) -> str:
    """What an effect does, in a few words, for the log of a write that holds it back."""
    if isinstance(effect, d.Demote):
        return f"demote ({', '.join(effect.reasons)})"
    if isinstance(effect, d.Restore):
        return "restore"
    if isinstance(effect, d.ReasonsChanged):
        return f"reasons ({', '.join(effect.after)})"
    if isinstance(effect, d.Adopt):
        return f"adopt {_describe(effect.key)} advskew {effect.after}"
    if isinstance(effect, d.Refuse):
        return f"leave {_describe(effect.key)} alone"
    if isinstance(effect, d.Manage):
        return f"manage {_describe(effect.key)}"
    if isinstance(effect, d.ShareAdopted):
        return f"adopt group {effect.group} counter {effect.after}"
    if isinstance(effect, d.Unconfirmed):
        return f"confirm {_describe(effect.key)} advskew {effect.value}"
    if isinstance(effect, d.NotAdopted):
        return f"keep {_describe(effect.key)} baseline {effect.baseline}"
    if isinstance(effect, d.SetAdvskew):
        return f"set {effect.interface} " + " ".join(
            f"vhid {v} advskew {s}" for v, s in effect.skews.items()
        )
    return f"group {effect.group} carpdemote {effect.delta:+d}"


def _waiting(effects: tuple[d.Effect, ...], rewrite: str | None) -> str:
    """The actions a failed write holds back: the edges if any, else the commands."""
    edges = [_action(e) for e in effects if not isinstance(e, d.COMMANDS)]
    words = edges or [_action(e) for e in effects]
    if words:
        return ", ".join(words)
    return f"rewrite ({rewrite})" if rewrite is not None else "recording what was read"


class Supervisor:
    def __init__(
        self,
        config: Config,
        host: Host,
        prober: Prober,
        log: Log,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] | None = None,
        boot_time: float | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.host = host
        self.prober = prober
        self.log = log
        self.wall = wall  # for what is shown and stored: `since`, `updated`
        self.clock = clock or _monotonic  # for durations: the hold-down
        self.boot_time = boot_time if boot_time is not None else wall()
        self.hooks = hooks
        self.pair: Pairing | None = None  # the peer's view and the pair rule (pairing.py)
        self.telemetry = Telemetry()
        self.memory = d.Memory()
        self.checks: dict[str, Check] = {}
        self.details: dict[str, str] = {}
        self.view: HostView | None = None
        # The view role changes were last logged against: the last read, or what routing
        # messages said since (rtview.py); None: the last read itself.
        self._told: HostView | None = None
        self._heard: list[IfInfo] = []  # RTM_IFINFO told since the read in flight began
        self._read_mark = 0  # how many of them came before it began
        self.read_error: str | None = None
        self.command_error: dict[str, str] = {}
        self.warned: tuple[str, ...] = ()
        self._sysctl_due = 0.0
        self._route: RouteSocket | None = None  # open while the routing socket reports
        self._read_due = 0.0  # the next whole read of the host (resync)
        self._wake = trio.Event()  # set by the listener: read the host now
        self._woken_by: str | None = None
        self._waiting: trio.CancelScope | None = None  # _react_meanwhile waiting for a wake
        self._interest: tuple[HostView | None, Interest] | None = None
        self._verdicts: Mapping[str, bool | None] | None = None  # at the last decide
        self._changed = True  # the last read differed from the one before
        self._held_at: float | None = None  # self.clock() when the demotion in force began
        self._rewrite: str | None = None  # the state file must be written again: why
        self._on_disk = False  # the state file was read or written: its absence is news
        self._write_error: tuple[str, str] | None = None  # (error, waiting) last logged
        self._write_error_at = 0.0  # self.clock() when it was logged
        self._lost: tuple[str, ...] = ()  # interfaces the last (refused) read lost at once
        self._configure(config)
        self.status = Status(config=config, started=wall())

    def _configure(self, config: Config) -> None:
        self.config = config
        self.policy = policy_of(config)
        self.params = check_params(config)
        # Checks that stay keep their counts and verdicts; new ones start with none.
        self.checks = {name: self.checks.get(name, Check()) for name in check_names(config)}
        # The ICMP probes of a round go out as one batch (the sync peer and the icmp groups);
        # the other groups (tcp, exec, relayd) run as tasks of their own beside it.
        sync = config.sync
        self._ask_peer = (sync.peer, sync.timeout) if sync and sync.peer is not None else None
        self._icmp = tuple(u for u in config.upstream if u.method == "icmp")
        self._others = tuple(u for u in config.upstream if u.method != "icmp")
        self._interest = None
        self._verdicts = None  # decide at the next round

    # --- memory ------------------------------------------------------------------------

    def load(self) -> None:
        """Read the state file; after a reboot, forget what the kernel forgot."""
        loaded = state.load(self.config.state_file)
        if loaded.note:
            self.log.error("state file set aside", detail=loaded.note)
        memory = loaded.memory
        self._on_disk = loaded.boot_time is not None
        if loaded.boot_time is not None and abs(loaded.boot_time - self.boot_time) > 2:
            memory = d.after_reboot(memory)
            self.log.notice("host rebooted since the state was written; baselines kept")
        memory, elapsed = d.resume(memory, self.wall())
        if memory.since != loaded.memory.since and loaded.memory.demoted:
            self.log.warning(
                "stored demotion time cannot be right; counted as now",
                stored=loaded.memory.since,
            )
            self._rewrite = "a corrected demotion time"
        self.memory = memory
        self._verdicts = None  # decide at the next round
        self._held_at = self.clock() - elapsed if elapsed is not None else None
        if memory.demoted:
            self.log.notice(
                "still demoted from before the restart",
                reasons=memory.reasons,
                since=memory.since,
            )
        if memory.maintenance:
            self.log.notice("maintenance is on (from the state file)")

    def _commit(self, memory: d.Memory) -> None:
        """`memory` is on disk: it is ours now. The hold-down starts at a demotion edge."""
        if memory.demoted and not self.memory.demoted:
            self._held_at = self.clock()
        elif not memory.demoted:
            self._held_at = None
        self.memory = memory

    def _save(self, memory: d.Memory) -> None:
        """Write the state file; OSError when it cannot be written."""
        state.save(self.config.state_file, memory, self.boot_time)
        self._on_disk = True
        self._rewrite = None
        if self._write_error is not None:
            self.log.notice("state file written again", file=self.config.state_file)
            self._write_error = None

    def persist(self, memory: d.Memory, waiting: str = "a change of state") -> bool:
        """Durably, before any change to the host; False when the file cannot be written,
        and then nothing may be changed: the failure is logged (at most once a minute for
        the same failure), counted, and the next round tries again. Synchronous on purpose:
        a few ms of fsync on an edge, and the write must be done before the command starts."""
        self._check_file()
        if memory == self.memory and self._rewrite is None:
            return True
        missing = self._rewrite == MISSING
        try:
            self._save(memory)
        except OSError as exc:
            self._write_failed(exc, waiting)
            return False
        self._commit(memory)
        if missing:
            self.log.warning(
                "state file missing; written back from memory", file=self.config.state_file
            )
        return True

    def _write_failed(self, exc: OSError, waiting: str) -> None:
        self.telemetry.state_write_errors += 1
        error = exc.strerror or str(exc)
        now = self.clock()
        if (error, waiting) != self._write_error or now - self._write_error_at >= (
            WRITE_ERROR_EVERY
        ):
            self.log.error(
                "cannot write the state file; holding back",
                file=self.config.state_file,
                error=error,
                waiting=waiting,
            )
            self._write_error = (error, waiting)
            self._write_error_at = now

    def _check_file(self) -> None:
        """A state file deleted under a running daemon is written back from memory."""
        if not self._on_disk:
            return  # a first start: the first change writes it
        try:
            os.stat(self.config.state_file)
        except (FileNotFoundError, NotADirectoryError):
            if self._rewrite is None:
                self._rewrite = MISSING
        except OSError:
            pass

    # --- one round ---------------------------------------------------------------------

    async def _read(
        self, out: dict[str, HostView], *, groups: bool = True, sysctl: bool = True
    ) -> None:
        """Read the host into out["view"]; `groups` False: the group counters of the last
        read stand (the caller reads them later); `sysctl` False: net.inet.carp waits for
        the next read even when due."""
        due = sysctl and trio.current_time() >= self._sysctl_due
        # The host bounds each command; this bounds the whole read whatever the host does.
        limit = 2 * self.config.platform.command_timeout + GRACE
        self._read_mark = len(self._heard)  # a message heard from now on may be newer
        try:
            with trio.fail_after(limit):
                view = await self.host.read(sysctl=due, groups=groups)
                out["view"] = await self._confirm(view)
        except trio.TooSlowError:
            exc = CommandTimeout(f"reading the host took more than {limit:g}s")
            self._read_failed(exc)
            return
        except HostError as exc:
            self._read_failed(exc)
            return
        if due:
            self._sysctl_due = trio.current_time() + self.config.platform.sysctl_interval
        self._read_due = trio.current_time() + self.config.platform.resync_interval
        if self.read_error is not None:
            self.log.notice("host read works again")
            self.read_error = None

    async def _confirm(self, view: HostView) -> HostView:
        """Re-read by name what this read shows less of than the previous one (misread.py)
        before it counts; a read that lost too much at once is a failed read."""
        sync = self.config.sync.interface if self.config.sync is not None else None
        done: list[str] = []
        for _ in range(2):  # a first read may learn the syncdev's name from the re-read
            names = doubtful(self.view, view, sync, done)
            if not names:
                break
            if len(names) > CONFIRM_MAX:
                if names == self._lost:  # the second read in a row that lost them
                    self._lost = ()
                    break
                self._lost = names
                raise Unparsable(
                    f"ifconfig: {len(names)} interfaces missing at once "
                    f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): "
                    "taken for output cut short until the next read agrees",
                    ("ifconfig",),
                )
            view = await self.host.reread(view, names)
            done.extend(names)
            back = [n for n in names if view.get(n) is not None]
            if back:
                self.log.info(
                    "ifconfig output showed less than the host has: re-read by name",
                    interfaces=", ".join(back),
                )
        self._lost = ()
        return view

    def _read_failed(self, exc: HostError) -> None:
        self.telemetry.read_errors += 1
        self.telemetry.command_errors["ifconfig"] += 1
        if str(exc) != self.read_error:
            self.log.error("host read failed", error=str(exc), kind=exc.kind)
        self.read_error = str(exc)

    async def _probe_icmp(self, peer: dict[str, bool], out: dict[str, Round]) -> None:
        """The sync peer and the icmp groups in one batch (`Prober.icmp_round`), under the
        longest of their timeouts and GRACE: a hung prober fails them all, never a stall."""
        ask = self._ask_peer
        if ask is None and not self._icmp:
            return
        timeouts = [u.timeout for u in self._icmp] + ([ask[1]] if ask is not None else [])
        start = trio.current_time()
        result: IcmpResult | None = None
        with trio.move_on_after(max(timeouts) + GRACE):
            result = await self.prober.icmp_round(ask, self._icmp)
        if ask is not None:
            rtt = result.peer if result is not None else None
            took = result.peer_took if result is not None else trio.current_time() - start
            self.telemetry.probe_duration(SYNC, took)
            peer["peer"] = rtt is not None
            if rtt is None:
                self.telemetry.probe_failures[(SYNC, ask[0])] += 1
        for i, upstream in enumerate(self._icmp):
            self._took_group(upstream, result.groups[i] if result is not None else None, out)

    async def _probe_upstream(self, upstream: UpstreamConfig, out: dict[str, Round]) -> None:
        result: GroupResult | None = None
        with trio.move_on_after(upstream.timeout + GRACE):
            result = await self.prober.group(upstream)
        self._took_group(upstream, result, out)

    def _took_group(
        self, upstream: UpstreamConfig, result: GroupResult | None, out: dict[str, Round]
    ) -> None:
        name = upstream_check(upstream.name)
        if result is None:  # the prober itself hung: a failed round, never a stall
            self.telemetry.probe_failures[(name, "*")] += 1
            self.details[name] = "probe hung"
            out[name] = Round.BAD
            return
        self.telemetry.probe_duration(name, result.duration)
        for target in result.failed:
            self.telemetry.probe_failures[(name, target)] += 1
        self.details[name] = result.detail
        out[name] = Round.GOOD if result.good else Round.BAD

    def _read_now(self) -> bool:
        """Read the host this round: no routing socket, a resync due, an event waiting, or
        something only a read settles (a value read once, a command in flight, demoted)."""
        if self._route is None or trio.current_time() >= self._read_due or self._wake.is_set():
            return True
        return not self._settled()

    async def poll_once(self) -> None:
        started = trio.current_time()
        got_view: dict[str, HostView] = {}
        peer: dict[str, bool] = {}
        upstream: dict[str, Round] = {}
        reading = self._read_now()
        if reading:
            self._take_wake()
        sync = self.config.sync
        probes = self._ask_peer is not None or bool(self.config.upstream)
        async with trio.open_nursery() as meanwhile:
            probing = trio.Event()
            if not reading and probes:
                # A routing message is acted on while the probes run.
                meanwhile.start_soon(self._react_meanwhile, probing)
            if not reading and not self._others:
                await self._probe_icmp(peer, upstream)  # the idle round: one ICMP batch
            else:
                async with trio.open_nursery() as nursery:
                    if reading:
                        nursery.start_soon(self._read, got_view)
                    nursery.start_soon(self._probe_icmp, peer, upstream)
                    for up in self._others:
                        nursery.start_soon(self._probe_upstream, up, upstream)
            probing.set()
            if self._waiting is not None:
                self._waiting.cancel()
        # Without a read this round, the last view stands: events keep it current.
        view = got_view.get("view") if reading else self.view

        rounds = dict(upstream)
        if sync is not None:
            rounds[SYNC] = sync_round(view, sync, peer.get("peer"))
            if view is not None:
                self.details[SYNC] = sync_link_problem(view, sync) or "link up"
            if sync.peer is not None and "peer" in peer:
                self.details[SYNC] += ", peer " + ("answered" if peer["peer"] else "silent")
        await self._conclude(rounds, got_view.get("view"), started, read=reading)

    async def _react_meanwhile(self, done: trio.Event) -> None:
        """While a round's probes run (up to their timeout: a dead gateway of two), react to
        a routing message at once rather than after them. A reaction under way finishes;
        the round then concludes on the newest read."""
        while not done.is_set():
            with trio.CancelScope() as self._waiting:
                await self._wake.wait()
            self._waiting = None
            if done.is_set():
                return  # the probes are done: the loop takes the wake
            await self.react()

    async def react(self) -> None:
        """A routing message said that an interface that matters changed: read the host now
        and decide on what it shows, without waiting for the probes. Only a SYNC link seen
        down counts as a round here (a hard failure needs no confirmation); the probes'
        checks keep their counts."""
        started = trio.current_time()
        self._take_wake()
        got_view: dict[str, HostView] = {}
        # The decision needs a group's demote counter only for method carpdemote; else it
        # is read after the commands (for the status and the metrics), not before them.
        # net.inet.carp is left to the next whole read.
        groups = self.policy.method == "carpdemote"
        await self._read(got_view, groups=groups, sysctl=False)
        view = got_view.get("view")
        rounds: dict[str, Round] = {}
        sync = self.config.sync
        if sync is not None and view is not None:
            problem = sync_link_problem(view, sync)
            if problem is not None:
                rounds[SYNC] = Round.HARD
                self.details[SYNC] = problem
        await self._conclude(rounds, view, started, read=True)
        if not groups and view is not None:
            await self._read_groups()

    async def _read_groups(self) -> None:
        """The group counters, after the round that read the host without them."""
        try:
            with trio.fail_after(self.config.platform.command_timeout + GRACE):
                demote = await self.host.read_groups()
        except (trio.TooSlowError, HostError):
            return  # the next whole read tells them (a failure of its own is logged then)
        view = self.view
        if view is not None and dict(view.group_demote) != dict(demote):
            self.view = HostView(view.interfaces, MappingProxyType(dict(demote)), view.sysctl)
            self.publish()

    async def _conclude(
        self, rounds: Mapping[str, Round], view: HostView | None, started: float, *, read: bool
    ) -> None:
        """Step the checks; when anything changed, decide (on a fresh read), act, publish.

        `read`: the host was read this round (`view` None: the read failed)."""
        self._step_checks(rounds)
        if view is not None:
            self._take_view(view)
        verdicts = {name: c.up for name, c in self.checks.items()}
        if self._idle(verdicts, changed=view is not None and self._changed):
            self.telemetry.polls += 1
            self.telemetry.poll_durations.observe(trio.current_time() - started)
            if read:
                self.publish()  # a resync: the metrics and the status catch up
            elif self.pair is not None:
                self.pair.idle(self)  # the peer hears this node every round
            return  # nothing new: no decide, no publish
        if not read:
            # Decide only on what the host shows now, never on an older read.
            got: dict[str, HostView] = {}
            await self._read(got)
            view = got.get("view")
            if view is not None:
                self._take_view(view)
        self._verdicts = verdicts
        inputs = d.Inputs(
            checks=MappingProxyType(dict(self.checks)),
            now=self.wall(),
            advskews=managed_advskews(view, self.config) if view is not None else None,
            counter=view.group_demote.get(self.policy.group) if view is not None else None,
            others=released_advskews(view, self.config, self.memory.vhids) if view else {},
            demoted_for=self._demoted_for(),
        )
        if self.pair is not None:
            inputs = self.pair.adjust(self, inputs)
        memory, effects = d.decide(self.policy, self.memory, inputs)
        if any(isinstance(e, d.COMMANDS) for e in effects):
            self.publish()  # what was read, before the commands take their time
        await self.apply(memory, effects)
        self.telemetry.polls += 1
        self.telemetry.poll_durations.observe(trio.current_time() - started)
        self.publish()

    def _take_view(self, view: HostView) -> None:
        """A new read: log role changes and warnings when it differs from the last one, or
        from what the routing messages since have told (those changes are logged already).
        A message heard while the read ran may be newer than what it printed: it stays told."""
        newer = self._heard[self._read_mark :]
        self._heard, self._read_mark = newer, 0
        told = view
        for m in newer:
            told = apply_ifinfo(told, m) or told
        self._changed = view != self.view
        if self._changed or self._told is not None or told is not view:
            self._observe(view, told)
        self.view = view
        self._told = told if told is not view else None

    def _idle(self, verdicts: Mapping[str, bool | None], *, changed: bool) -> bool:
        """Nothing to decide: the host as before, the same verdicts, nothing pending, and
        with a peer, nothing new or pending from the pair (pairing.py: `quiet`)."""
        if changed or verdicts != self._verdicts or not self._settled():
            return False
        return self.pair is None or self.pair.quiet(self)

    def _settled(self) -> bool:
        """Nothing that time or another read can change: not demoted (hold-down), nothing in
        flight, nothing read once waiting for a second read."""
        self._check_file()  # a deleted state file is written back at once, idle or not
        if self._rewrite is not None or self._write_error is not None:
            return False  # the state file must be written (again)
        m = self.memory
        if m.demoted or m.share != m.share_target or m.share_pending or m.unconfirmed:
            return False  # unconfirmed: a value read once waits for the next read to agree
        return all(r.sent is None and r.target == r.seen for r in m.vhids.values())

    def _demoted_for(self) -> float | None:
        if not self.memory.demoted or self._held_at is None:
            return None
        return max(0.0, self.clock() - self._held_at)

    def _step_checks(self, rounds: Mapping[str, Round]) -> None:
        for name, result in rounds.items():
            fall, rise = self.params[name]
            before = self.checks[name]
            after = step(before, result, fall, rise)
            self.checks[name] = after
            if after.up != before.up:
                word = {True: "up", False: "down", None: "unknown"}[after.up]
                line = self.log.notice if before.up is not None or not after.up else self.log.info
                line(f"check {word}", check=name, detail=self.details.get(name))

    def _observe(self, view: HostView, told: HostView) -> None:
        """Role changes since what was last told (`told`: this read, with what the messages
        heard while it ran say on top); warnings of this read."""
        self._roles(self._told if self._told is not None else self.view, told)
        found = tuple(host_warnings(view, self.config))
        for w in found:
            if w not in self.warned:
                self.log.notice("host needs attention", detail=w)
        self.warned = found

    def _roles(self, before: HostView | None, after: HostView) -> None:
        """Log, count and hook each carp role change from `before` to `after`."""
        old = roles(before) if before is not None else {}
        for change in role_changes(old, roles(after)):
            self.telemetry.transitions[
                (change.interface, change.vhid, change.before, change.after)
            ] += 1
            self.log.notice(
                f"{change.interface} vhid {change.vhid} {change.before} -> {change.after}",
                interface=change.interface,
                vhid=change.vhid,
            )
            self._fire(
                "role_change",
                INTERFACE=change.interface,
                VHID=str(change.vhid),
                FROM=change.before,
                TO=change.after,
            )

    def _tell(self, messages: list[Message]) -> None:
        """Log at once the carp role changes that RTM_IFINFO messages show (rtview.py), with
        the lines a read would log; the read they call for confirms without logging again.
        Nothing here is decided on: only a read of the host counts."""
        told = self._told if self._told is not None else self.view
        if told is None:
            return
        for m in messages:
            if isinstance(m, IfInfo):
                self._heard.append(m)
                if len(self._heard) > HEARD_MAX:  # no read for long: the oldest go
                    del self._heard[0]
                    self._read_mark = max(0, self._read_mark - 1)
                after = apply_ifinfo(told, m)
                if after is not None and after is not told:
                    self._roles(told, after)
                    told = after
        if told is not self.view:
            self._told = told

    # --- acting ------------------------------------------------------------------------

    async def apply(self, memory: d.Memory, effects: tuple[d.Effect, ...]) -> None:
        before = self.memory
        self._check_file()
        if not self.persist(memory, _waiting(effects, self._rewrite)):
            return  # nothing is reported or run that is not on disk; the next round retries
        for effect in effects:
            if isinstance(effect, d.Restore):
                report_restore(self, effect, before, memory)
            elif not isinstance(effect, d.COMMANDS):
                report(self, effect)
        commands = [e for e in effects if isinstance(e, d.COMMANDS)]
        if not commands:
            return
        budget = self.config.platform.command_timeout * (len(commands) + 1)
        with trio.CancelScope(shield=True, deadline=trio.current_time() + budget):
            for effect in commands:
                if await self._command(effect):
                    # If this write fails, the file still holds the command as sent: the
                    # next read tells its outcome.
                    self.persist(d.confirm(self.memory, effect), "recording a command done")

    async def _command(self, effect: d.Effect) -> bool:
        try:
            if isinstance(effect, d.SetAdvskew):
                await self.host.set_advskew(effect.interface, effect.skews)
                what = " ".join(f"vhid {v} advskew {s}" for v, s in effect.skews.items())
                self.log.notice(f"set {effect.interface} {what}", interface=effect.interface)
            elif isinstance(effect, d.CarpDemote):
                await self.host.carpdemote(effect.group, effect.delta)
                self.log.notice(
                    f"group {effect.group} carpdemote {effect.delta:+d}", group=effect.group
                )
        except (HostError, ValueError) as exc:
            key = effect.interface if isinstance(effect, d.SetAdvskew) else "carpdemote"
            self.telemetry.command_errors["ifconfig"] += 1
            if self.command_error.get(key) != str(exc):
                self.log.error("command failed, will retry", error=str(exc))
            self.command_error[key] = str(exc)
            return False
        self.command_error.pop(
            effect.interface if isinstance(effect, d.SetAdvskew) else "carpdemote", None
        )
        return True

    def _fire(self, event: str, **env: str) -> None:
        if self.hooks is not None:
            self.hooks.fire(event, env)

    def publish(self) -> None:
        self.status = Status(
            config=self.config,
            started=self.status.started,
            updated=self.wall(),
            view=self.view,
            checks=MappingProxyType(dict(self.checks)),
            details=MappingProxyType(dict(self.details)),
            memory=self.memory,
            warnings=self.warned,
            read_error=self.read_error,
            telemetry=self.telemetry.snapshot(),
            pair=self.pair.status() if self.pair is not None else None,
        )
        if self.pair is not None:
            self.pair.published(self.status)

    # --- control -----------------------------------------------------------------------

    def set_maintenance(self, on: bool) -> None:
        """Takes effect at the next round; persisted now, so it survives a restart.
        OSError when the state file cannot be written: then nothing changes."""
        if self.memory.maintenance != on:
            memory = d.set_maintenance(self.memory, on)
            try:
                self._save(memory)
            except OSError as exc:
                self._write_failed(exc, "maintenance " + ("on" if on else "off"))
                raise
            self._commit(memory)
            self._verdicts = None  # decide at the next round
            self.log.notice("maintenance " + ("on" if on else "off"))
            self.publish()

    def reconfigure(self, config: Config) -> None:
        """A new, checked config: checks added, removed or changed; memory kept."""
        self._configure(config)
        self.publish()

    # --- the loop ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.log.notice(
            "started",
            checks=tuple(self.checks) or "none",
            method=self.policy.method,
            interval=self.config.interval,
        )
        route = open_route_socket(self.config.platform.route_socket)
        if isinstance(route, str):
            self.log.notice(
                "no routing socket: reading the host every interval",
                reason=route,
                interval=self.config.interval,
            )
        try:
            async with trio.open_nursery() as nursery:
                if not isinstance(route, str):
                    self._route = route
                    nursery.start_soon(self._listen, route)
                    self.log.info(
                        "listening to the routing socket",
                        socket=route.what,
                        resync_interval=self.config.platform.resync_interval,
                    )
                task_status.started()
                await self._loop()
        finally:
            self._route = None
            if not isinstance(route, str):
                route.close()

    async def _loop(self) -> None:
        next_tick = trio.current_time()
        while True:
            await self.poll_once()
            # A round that overran (probes that waited out a timeout as long as the interval)
            # is followed by the next one at once: skipping a tick would double the time
            # that `fall` bad rounds take.
            next_tick = max(next_tick + self.config.interval, trio.current_time())
            while True:
                with trio.move_on_at(next_tick):
                    await self._wake.wait()
                if not self._wake.is_set():
                    break
                await self.react()

    def _take_wake(self) -> str | None:
        """The reason the listener gave for a read now (None: none), cleared."""
        reason = self._woken_by
        if self._wake.is_set():
            self._wake = trio.Event()
        self._woken_by = None
        return reason

    async def _listen(self, route: RouteSocket) -> None:
        """Read the routing socket; wake the loop for a message that matters."""
        bad: str | None = None
        while True:
            try:
                data = await route.receive()
            except OSError as exc:
                self.log.error(
                    "routing socket failed: reading the host every interval",
                    error=exc.strerror or str(exc),
                )
                self._route = None
                return
            try:
                messages = decode(data)
            except RtMsgError as exc:
                if str(exc) != bad:
                    self.log.warning("unreadable routing message: reading the host", error=str(exc))
                bad = str(exc)
                reason: str | None = "unreadable routing message"
            else:
                self._tell(messages)
                reason = why(messages, self._interest_now())
            if reason is not None and not self._wake.is_set():
                self._woken_by = reason
                self.log.debug("routing message", reason=reason)
                self._wake.set()

    def _interest_now(self) -> Interest:
        """What matters according to the last read; computed once per read."""
        if self._interest is None or self._interest[0] is not self.view:
            self._interest = (self.view, interest(self.view, self.config))
        return self._interest[1]

    async def shutdown(self) -> None:
        """On SIGTERM/SIGINT. By default leave the node as it is (a demoted node stays
        demoted); with restore_on_exit, restore now, hold-down or not, within a deadline."""
        deadline = trio.current_time() + 3 * self.config.platform.command_timeout + 1
        with trio.CancelScope(shield=True, deadline=deadline) as scope:
            memory = d.stand_down(self.policy, self.memory)
            if self.config.restore_on_exit and memory != self.memory:
                await self._restore_now(memory)
        if scope.cancelled_caught:
            self.log.error("stopping: the restore did not finish in time")
        self.log.notice(
            "stopped",
            demoted=self.memory.demoted,
            reasons=self.memory.reasons,
            maintenance=self.memory.maintenance,
        )

    async def _restore_now(self, memory: d.Memory) -> None:
        try:
            view = await self.host.read(sysctl=False)
        except HostError as exc:
            self.log.error("restore_on_exit: cannot read the host", error=str(exc))
            return
        inputs = d.Inputs(
            checks={},
            now=self.wall(),
            advskews=managed_advskews(view, self.config),
            counter=view.group_demote.get(self.policy.group),
        )
        self.log.notice("restore_on_exit: restoring baselines")
        memory, todo = d.plan(self.policy, memory, inputs)
        await self.apply(memory, tuple(todo))
