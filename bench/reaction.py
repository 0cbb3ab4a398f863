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
phase of the poll cycle. The fault time is the wall clock right after the change took effect
(the world file renamed into place; the sysctl written; nft returned). The command time is
when the recording `ifconfig` started running (bench/recorder.py). The fault is cleared as soon
as the demotion is seen, and the recovery runs from that moment to the restore command.

Elections take time in the simulator as on the wire (carpd_py/sim/kernel.py): the VIPs move
when node B becomes MASTER of every managed interface, which the bench reads from the
simulated kernel's event log ("fault to VIP moved": what a user of the pair feels). With
OpenBSD 7.4's pfsync, the `sync` fault moves them at once: the kernel's own +1 on the demote
counter ("pfsync link") is advertised before carpd-py acts. Before the next fault the bench
waits until A is MASTER of both again.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .netns import Helped, private_namespace_works
from .recorder import Call
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


@dataclass
class ReactionResult:
    samples: list[Sample] = field(default_factory=list)
    kinds: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it was not measured
    settings: dict[str, object] = field(default_factory=dict)
    reasons_ok: dict[str, tuple[int, int]] = field(default_factory=dict)  # matched, total

    def of(self, kind: str) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind]


def _polls(calls: list[Call]) -> list[Call]:
    return sorted((c for c in calls if c.is_full_read), key=lambda c: c.start)


def decompose(kind: str, calls: list[Call], t_fault: float, first: Call, last: Call,
              restore: Call, t_clear: float, applied: float | None,
              lead: float = 0.0) -> Sample:  # fmt: skip
    """Split one reaction. `lead`: how long before its recorded start a poll began (the
    recorder's interpreter start): the upstream probes start with the poll, so the first poll
    that can see an upstream fault is the first one spawned after it; the simulated ifconfig
    reads the world after its recorded start, so for `sync` it is the first one recorded."""
    reads = _polls(calls)
    lead = 0.0 if kind == "sync" else lead
    seeing = next((c for c in reads if c.start - lead >= t_fault), first)
    deciding = max((c for c in reads if c.start <= first.start), key=lambda c: c.start)
    same_poll = [
        c for c in calls
        if c.is_read and deciding.start - 0.2 <= c.start <= first.start
    ]  # fmt: skip
    read_done = max((c.end for c in same_poll), default=deciding.end)
    read_start = min((c.start for c in same_poll), default=deciding.start)
    return Sample(
        kind=kind,
        reaction=first.start - t_fault,
        all_demoted=last.start - t_fault,
        recovery=restore.start - t_clear,
        to_poll=seeing.start - lead - t_fault,
        rounds=deciding.start - seeing.start,
        in_poll=first.start - deciding.start,
        sim_read=read_done - read_start,
        after_read=first.start - read_done,
        applied_lag=None if applied is None else applied - first.start,
    )


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
    node = BenchNode(root, "handbook", private=private)
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
    try:
        node.start()
        node.wait_checks_up(CHECKS)
        time.sleep(INTERVAL)
        for i in range(faults):
            for kind in kinds:
                time.sleep(rng.uniform(0.0, INTERVAL))
                t_before = time.time()  # the kernel may move the VIPs within make() (sync)
                t_fault = make.make(kind)
                first = calls.wait_for(lambda c: c.advskew() == DEMOTED, t_fault, 30)
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
                result.samples.append(sample)
                vip = "-" if sample.vip_moved is None else f"{sample.vip_moved * 1000:6.0f} ms"
                progress(
                    f"  reaction {i + 1}/{faults} {kind:<11} demote {sample.reaction * 1000:6.0f} "
                    f"ms  VIP moved {vip}  restore {sample.recovery * 1000:6.0f} ms"
                )
                time.sleep(0.2)
    finally:
        node.stop()
    result.reasons_ok = check_reasons(node.log(), [s.kind for s in result.samples])
    return result


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
