"""Reaction and recovery: fault to demotion command, fault to VIP moved, fault cleared to
restore command.

One real carpd-py daemon runs on node A of the simulated handbook pair (2 carp interfaces),
inside a private network namespace of its own (bench/netns.py), with three checks at once:

- `sync`: pfsync0 over em2, no peer probe (the ICMP fault below would fail it too);
- `upstream:icmp`: ICMP echo to 127.0.0.2 and 127.0.0.3 (min_up 1);
- `upstream:tcp`: TCP connect to the same two addresses, on the helper's listeners.

Every setting is the default of carpd-py.conf(5) (interval 1.0 s, sync fall/rise 3/3,
upstream timeout 1.0 s, fall/rise 3/5), except `demote.hold_down`: 2 s instead of 10 s, so that
one fault takes seconds, not a quarter of a minute (the hold-down only delays the restore).

The faults, one at a time, taken in turn (sync, icmp, tcp, tcp-refused, sync, ...):

- `sync`: em2 loses its carrier in the simulated world (`World.set_link`): the SYNC cable;
- `icmp`: the namespace stops answering echo requests (silent loss: each probe times out);
- `tcp`: nftables drops the SYNs to the targets' port (silent loss: connect() times out);
- `tcp-refused`: the listeners close (connect() is refused at once: a service down, not a
  dead gateway; outside the targets' formula, shown for what a fast failure costs).

Before each fault the bench waits a random time in [0, interval) so that faults land at every
phase of the poll cycle. The fault time is, for `sync`, the simulated kernel's change (the
link event in the world's event log), else the wall clock right after the change took effect
(the sysctl written; nft returned). The command time is when the daemon exec'd the recording
`ifconfig` (its C front's clock, bench/recorder.py). For `sync` each sample is also split
(issue 12): `sent`, until the routing message left the simulator (the tap,
bench/routetap.py); `sim_reads`, the simulated commands running between the message and the
demotion command; `net`, the rest: carpd-py's share. Node A's carp role changes are matched
to the daemon's log lines (stamped as they came) for the "logged within 25 ms" figure. The
fault is cleared as soon as the demotion is seen, and the recovery runs from that moment to
the restore command.

Elections take time in the simulator as on the wire (carpd_py/sim/kernel.py): the VIPs move
when node B becomes MASTER of every managed interface, which the bench reads from the
simulated kernel's event log ("fault to VIP moved": what a user of the pair feels). With
OpenBSD 7.4's pfsync, the `sync` fault moves them at once: the kernel's own +1 on the demote
counter ("pfsync link") is advertised before carpd-py acts. Before the next fault the bench
waits until A is MASTER of both again.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from carpd_py.rtmsg import LINK_STATE_DOWN, LINK_STATE_INVALID, link_state_is_up
from carpd_py.sim.events import SimEvent

from .netns import Helped, private_namespace_works
from .recorder import Call
from .routetap import RouteTap
from .simpair import INTERVAL, SYNC_DEFAULTS, UPSTREAM_DEFAULTS, BenchNode, free_port, upstream

HOLD_DOWN = 2.0
TARGETS = ["127.0.0.2", "127.0.0.3"]
KINDS = ("sync", "icmp", "tcp", "tcp-refused")
REASON = {
    "sync": "sync",
    "icmp": "upstream:icmp",
    "tcp": "upstream:tcp",
    "tcp-refused": "upstream:tcp",
}
CHECKS = ["sync", "upstream:icmp", "upstream:tcp"]
MANAGED = ("carp0", "carp1")
DEMOTED, BASELINE = 240, 0  # node A's advskew: demoted, and its own


@dataclass(frozen=True)
class Sample:
    """One fault, and what the daemon did about it (seconds)."""

    kind: str
    reaction: float  # fault -> first demotion command started
    all_demoted: float  # fault -> last managed interface's demotion command started
    recovery: float  # fault cleared -> first restore command started
    to_poll: float  # fault -> the first poll that could see it (its plain ifconfig started)
    rounds: float  # that poll -> the deciding poll (fall - 1 intervals for the upstreams)
    in_poll: float  # deciding poll's ifconfig started -> demotion command started
    sim_read: float  # deciding poll: first read started -> last read done (the simulator)
    after_read: float  # last read done -> demotion command started (carpd-py, and probes)
    applied_lag: float | None  # demotion command started -> applied (the sim's command log)
    vip_moved: float | None = None  # fault -> node B MASTER of every managed interface
    # sync only (issue 12), from the routing message; None in older results.json
    sent: float | None = None  # the kernel's change -> its routing message left the simulator
    sim_reads: float | None = None  # the simulated reads between the message and the command
    net: float | None = None  # reaction less `sent` and `sim_reads`: carpd-py's share


@dataclass(frozen=True)
class RoleSample:
    """One carp role change of node A: the kernel's change, its routing message leaving the
    simulator, the daemon's log line of it (wall-clock seconds)."""

    interface: str
    vhid: int
    before: str
    after: str
    kernel: float  # the simulated kernel's change (its event log, as wall-clock time)
    sent: float | None  # the tap had its RTM_IFINFO (None: no message seen)
    logged: float | None  # the daemon's log line (None: not logged)
    sim_reads: float = 0.0  # simulated commands running between the message and the line
    fault: str = ""  # the kind of the fault during which it came ("" in older results)

    @property
    def gross(self) -> float | None:
        """The kernel's change -> the daemon's log line, as measured."""
        return None if self.logged is None else self.logged - self.kernel

    @property
    def net(self) -> float | None:
        """Less the simulator's share: its lazy election and state-file writes before the
        message left, and its Python commands (reads, and set commands the daemon waits for)
        running between the message and the line."""
        if self.logged is None or self.sent is None:
            return None
        return self.logged - self.sent - self.sim_reads


@dataclass
class ReactionResult:
    samples: list[Sample] = field(default_factory=list)
    kinds: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it was not measured
    settings: dict[str, object] = field(default_factory=dict)
    reasons_ok: dict[str, tuple[int, int]] = field(default_factory=dict)  # matched, total
    roles: list[RoleSample] = field(default_factory=list)  # node A's role changes, logged
    exact_exec: bool = False  # command times from the front's clock (bench/front.c)

    def of(self, kind: str) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind]


def decompose(kind: str, calls: list[Call], t_fault: float, first: Call, last: Call,
              restore: Call, t_clear: float, applied: float | None,
              lead: float = 0.0) -> Sample:  # fmt: skip
    """Split one reaction; every command at the moment the daemon exec'd it (`Call.launched`;
    `lead`, the recorder's interpreter start, only dates a command without the C front)."""

    def at(c: Call) -> float:
        return c.launched(lead)

    reads = sorted((c for c in calls if c.is_full_read), key=at)
    cmd = at(first)
    seeing = next((c for c in reads if at(c) >= t_fault), first)
    deciding = max((c for c in reads if at(c) <= cmd), key=at, default=first)
    same_poll = [c for c in calls if c.is_read and at(deciding) - 0.2 <= at(c) <= cmd]
    read_done = max((c.end for c in same_poll), default=deciding.end)
    read_start = min((at(c) for c in same_poll), default=at(deciding))
    return Sample(
        kind=kind,
        reaction=cmd - t_fault,
        all_demoted=at(last) - t_fault,
        recovery=at(restore) - t_clear,
        to_poll=at(seeing) - t_fault,
        rounds=at(deciding) - at(seeing),
        in_poll=cmd - at(deciding),
        sim_read=read_done - read_start,
        after_read=cmd - read_done,
        applied_lag=None if applied is None else applied - cmd,
    )


def busy(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] covered by at least one of `spans` (their union)."""
    cut = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in cut:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def sim_read_spans(calls: list[Call], lead: float = 0.0) -> list[tuple[float, float]]:
    """(exec, exit) of every simulated command the daemon ran (reads, and the set commands
    it waits for): the simulator's Python executables at work, where OpenBSD runs a C
    ifconfig of about a millisecond."""
    return [(c.launched(lead), c.end) for c in calls]


def _sets(interface: str, value: int) -> Callable[[Call], bool]:
    def match(c: Call) -> bool:
        return c.advskew() == value and c.args[0] == interface

    return match


class Faults:
    """Make and clear each kind of fault; each returns the wall-clock time it took effect."""

    def __init__(self, node: BenchNode, helper: Helped) -> None:
        self.node = node
        self.helper = helper

    def make(self, kind: str) -> float:
        if kind == "sync":
            self.node.world.set_link("A", "em2", up=False)
            return time.time()
        if kind == "icmp":
            return float(self.helper.call(op="icmp", up=False)["t"])
        mode = "drop" if kind == "tcp" else "refuse"
        return float(self.helper.call(op="tcp", mode=mode)["t"])

    def clear(self, kind: str) -> float:
        if kind == "sync":
            self.node.world.set_link("A", "em2", up=True)
            return time.time()
        if kind == "icmp":
            return float(self.helper.call(op="icmp", up=True)["t"])
        mode = "pass" if kind == "tcp" else "accept"
        return float(self.helper.call(op="tcp", mode=mode)["t"])


def _vip_moved_time(node: BenchNode, since: float, timeout: float = 30.0) -> float | None:
    """When node B became MASTER of every managed interface after `since` (the kernel's
    event times), or None if it did not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(node.world.state("B", name) == "MASTER" for name in MANAGED):
            moved: dict[str, float] = {}
            for e in node.world.events():
                if (
                    e.is_transition and e.node == "B" and e.new == "MASTER"
                    and e.iface in MANAGED and e.time >= since
                ):  # fmt: skip
                    moved.setdefault(str(e.iface), e.time)
            if len(moved) == len(MANAGED):
                return max(moved.values())
            return None  # B was MASTER before the fault: nothing moved
        time.sleep(0.02)
    return None


def _wait_a_master(node: BenchNode, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(node.world.state("A", name) == "MASTER" for name in MANAGED):
            return
        time.sleep(0.05)
    raise TimeoutError(f"node A not MASTER of {MANAGED} again within {timeout:g}s")


def _applied_time(node: BenchNode, first: Call) -> float | None:
    """When the simulator applied that command, if it keeps a command log (STATE.commands)."""
    commands = getattr(node.world, "commands", None)
    if commands is None:
        return None
    try:
        found = [
            c.time for c in commands()
            if c.node == "A" and tuple(c.argv[1:]) == first.args and c.time >= first.start
        ]  # fmt: skip
    except (OSError, ValueError, AttributeError):
        return None
    return min(found) if found else None


def run_reaction(
    root: Path,
    faults: int,
    *,
    progress: Callable[[str], None] = print,
    seed: int = 1,
    lead: float = 0.0,
) -> ReactionResult:
    """`lead`: the recorders' interpreter start (simcost), to date the polls' spawns."""
    result = ReactionResult()
    private = private_namespace_works()
    node = BenchNode(root, "handbook", private=private, timed=True)
    helper = node.open_helper()
    kinds = list(KINDS)
    if not private:
        result.skipped["icmp"] = (
            "no private network namespace here (unshare --net failed): left to the network lab"
        )
        result.skipped["tcp"] = "silent TCP loss needs nftables in a private namespace"
    elif not helper.nft:
        result.skipped["tcp"] = "silent TCP loss needs nftables (nft) in the namespace"
    kinds = [k for k in kinds if k not in result.skipped]
    result.kinds = tuple(kinds)
    port = free_port()
    helper.call(op="listen", addresses=TARGETS, port=port)
    config = node.configure(
        hold_down=HOLD_DOWN,
        sync={},
        upstreams=[
            upstream("icmp", "icmp", TARGETS),
            upstream("tcp", "tcp", TARGETS, port),
        ],
        metrics=False,
    )
    result.settings = {
        "interval": INTERVAL,
        "hold_down": HOLD_DOWN,
        "sync": dict(SYNC_DEFAULTS),
        "upstream": dict(UPSTREAM_DEFAULTS),
        "private_namespace": private,
        "config": config,
    }
    rng = random.Random(seed)
    calls = node.calls
    make = Faults(node, helper)
    events = Events(node)
    started: list[tuple[float, str]] = []  # (time, kind) of each fault
    try:
        node.start()
        node.wait_checks_up(CHECKS)
        time.sleep(INTERVAL)
        events.skip()  # the start's role changes are not faults' (and the daemon read them)
        for i in range(faults):
            for kind in kinds:
                time.sleep(rng.uniform(0.0, INTERVAL))
                t_before = time.time()  # the kernel may move the VIPs within make() (sync)
                started.append((t_before, kind))
                t_fault = make.make(kind)
                sent: float | None = None
                if kind == "sync":  # from the kernel's change, not from set_link's return
                    t_fault, sent = events.link_down("A", "em2", t_before, t_fault)
                first = calls.wait_for(lambda c: c.advskew() == DEMOTED, t_before, 30)
                last = first
                for name in MANAGED:
                    call = calls.wait_for(_sets(name, DEMOTED), t_fault, 10)
                    last = call if call.start > last.start else last
                moved = _vip_moved_time(node, t_before)
                t_clear = make.clear(kind)
                restore = calls.wait_for(lambda c: c.advskew() == BASELINE, t_clear, 60)
                for name in MANAGED:  # every interface back before the next fault
                    calls.wait_for(_sets(name, BASELINE), t_clear, 10)
                _wait_a_master(node)  # the VIPs back on A (preempt, at B's next advertisement)
                applied = _applied_time(node, first)
                sample = decompose(
                    kind, calls.calls, t_fault, first, last, restore, t_clear, applied, lead
                )
                took = None if moved is None else max(0.0, moved - t_fault)
                sample = replace(sample, vip_moved=took)
                if sent is not None:
                    cmd = first.launched(lead)
                    reads = busy(sim_read_spans(calls.calls, lead), sent, cmd)
                    sample = replace(
                        sample,
                        sent=sent - t_fault,
                        sim_reads=reads,
                        net=cmd - sent - reads,
                    )
                result.samples.append(sample)
                vip = "-" if sample.vip_moved is None else f"{sample.vip_moved * 1000:6.0f} ms"
                net = "" if sample.net is None else f" (net {sample.net * 1000:.0f} ms)"
                progress(
                    f"  reaction {i + 1}/{faults} {kind:<11} demote {sample.reaction * 1000:6.0f} "
                    f"ms{net}  VIP moved {vip}  restore {sample.recovery * 1000:6.0f} ms"
                )
                time.sleep(0.2)
        time.sleep(1.0)  # the last role changes logged
        calls.refresh()
        roles = role_samples(
            events.transitions("A"), node.tap, stamped(node.log()), sim_read_spans(calls.calls)
        )
        result.roles = [
            replace(x, fault=next((k for t, k in reversed(started) if t <= x.kernel), ""))
            for x in roles
        ]
    finally:
        node.stop()
    result.reasons_ok = check_reasons(node.log(), [s.kind for s in result.samples])
    result.exact_exec = any(not math.isnan(c.exec_time) for c in calls.calls)
    return result


class Events:
    """The simulated kernel's event log, read from where the bench last left it."""

    def __init__(self, node: BenchNode) -> None:
        self.node = node
        self.world = node.world
        self.offset = 0
        self.seen: list[SimEvent] = []

    def skip(self) -> None:
        self.offset = self.world.events_from(0)[1]

    def _more(self) -> None:
        new, self.offset = self.world.events_from(self.offset)
        self.seen.extend(new)

    def link_down(
        self, host: str, ifname: str, after: float, fallback: float
    ) -> tuple[float, float]:
        """(the kernel's change, the message leaving the simulator) of `ifname`'s carrier loss
        made after `after`; the tap's time, else `fallback` (when set_link returned)."""
        start = len(self.seen)
        self._more()
        state = self.world.read()
        change = next(
            (
                state.wall_time(e.time) for e in self.seen[start:]
                if e.kind == "link" and e.node == host and e.iface == ifname
                and e.link_state == LINK_STATE_DOWN and state.wall_time(e.time) >= after - 0.001
            ),
            None,
        )  # fmt: skip
        kernel = fallback if change is None else change
        tap = self.node.tap
        index = state.node(host).get(ifname)
        sent = fallback
        if tap is not None and index is not None:
            found = [
                m.time for m in tap.since(kernel - 0.001)
                if m.index == index.index and m.link_state == LINK_STATE_DOWN
            ]  # fmt: skip
            sent = min(found, default=fallback)
        return kernel, sent

    def transitions(self, host: str) -> list[tuple[SimEvent, float, int]]:
        """Every carp role change of `host`'s managed interfaces: (event, wall time, index)."""
        self._more()
        state = self.world.read()
        indexes = {i.name: i.index for i in state.node(host).interfaces}
        return [
            (e, state.wall_time(e.time), indexes.get(str(e.iface), -1))
            for e in self.seen
            if e.is_transition and e.node == host and e.iface in MANAGED
        ]


def role_link(role: str, link_state: int) -> bool:
    """Whether a carp interface's RTM_IFINFO link state says `role` (carp_set_state():
    MASTER is up, whatever the duplex the simulator names; BACKUP down; INIT invalid)."""
    if role == "MASTER":
        return link_state_is_up(link_state)
    return link_state == {"BACKUP": LINK_STATE_DOWN, "INIT": LINK_STATE_INVALID}.get(role)


def stamped(log: str) -> list[tuple[float, str]]:
    """The (time, line) of a log written through `stamp_lines` (bench/netns.py)."""
    out = []
    for line in log.splitlines():
        head, _, rest = line.partition(" ")
        try:
            out.append((float(head), rest))
        except ValueError:
            continue
    return out


def role_samples(
    changes: list[tuple[SimEvent, float, int]],
    tap: RouteTap | None,
    log: list[tuple[float, str]],
    spans: list[tuple[float, float]],
) -> list[RoleSample]:
    """Match each kernel role change to its routing message and to the daemon's log line of
    it (`IFACE ... BEFORE -> AFTER`), in order: each message and line is used once."""
    used_lines: set[int] = set()
    used_msgs: set[int] = set()
    messages = tap.since(0.0) if tap is not None else []
    out = []
    for e, kernel, index in changes:
        before, after = str(e.old), str(e.new)
        sent = None
        for i, m in enumerate(messages):
            if (
                i not in used_msgs and m.index == index and m.time >= kernel - 0.001
                and role_link(after, m.link_state)
            ):  # fmt: skip
                used_msgs.add(i)
                sent = m.time
                break
        pattern = re.compile(rf"\b{re.escape(str(e.iface))}\b.*\b{before}\s*->\s*{after}\b")
        logged = None
        for i, (t, line) in enumerate(log):
            if i not in used_lines and t >= kernel - 0.001 and pattern.search(line):
                used_lines.add(i)
                logged = t
                break
        reads = busy(spans, sent, logged) if sent is not None and logged is not None else 0.0
        out.append(
            RoleSample(str(e.iface), int(e.vhid or 0), before, after, kernel, sent, logged, reads)
        )
    return out


def check_reasons(log: str, kinds: list[str]) -> dict[str, tuple[int, int]]:
    """Did each demotion name the reason of its fault? (kind -> matched, total)"""
    said = re.findall(r"demoting reasons=(\S+)", log)
    out: dict[str, tuple[int, int]] = {}
    for kind, reasons in zip(kinds, said, strict=False):
        matched, total = out.get(kind, (0, 0))
        out[kind] = (matched + int(reasons == REASON[kind]), total + 1)
    for kind in kinds[len(said) :]:
        matched, total = out.get(kind, (0, 0))
        out[kind] = (matched, total + 1)
    return out
