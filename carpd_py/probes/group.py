"""One round of one upstream group: all its targets probed at once, each under its timeout.

A target that hangs counts as not answering; it never holds the round up: the round ends
within `timeout + margin` whatever the probes do (unless one shields itself from cancellation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..config import ProbeMethod, UpstreamConfig
from ..relayparse import RelaydError, parse_summary
from ..run import RunTimeout, run
from .exec import ExecResult, exec_probe, first_line
from .tcp import tcp_probe

ROUND_MARGIN = 0.25  # seconds a round may take past the group's timeout

TargetProbe = Callable[[str, float], Awaitable["float | None"]]
"""probe(address, timeout) -> seconds, or None for no answer; e.g. Pingers.ping."""

BatchProbe = Callable[[Sequence[str], float], Awaitable[Sequence["float | None"]]]
"""probe_all(addresses, timeout) -> each one's seconds or None, in order; e.g. Pinger.ping_all:
every echo of a round sent at once and awaited once, without a task per target."""


@dataclass(frozen=True)
class TargetResult:
    target: str
    rtt: float | None  # seconds; None: no answer within the timeout

    @property
    def answered(self) -> bool:
        return self.rtt is not None


@dataclass(frozen=True)
class GroupResult:
    name: str
    method: ProbeMethod
    good: bool  # answered >= min_up
    answered: int  # targets that answered; for "exec": 1 if the command exited 0, else 0
    min_up: int
    targets: tuple[TargetResult, ...]  # in config order; () for "exec"
    duration: float  # seconds the round took
    command: ExecResult | None = None  # "exec" only
    note: str = ""  # "relayd": what relayctl said, in one line


async def probe_group(
    upstream: UpstreamConfig,
    ping: TargetProbe | None = None,
    *,
    margin: float = ROUND_MARGIN,
    relayctl: str = "/usr/sbin/relayctl",
    ping_all: BatchProbe | None = None,
) -> GroupResult:
    """Probe every target of `upstream` concurrently and judge the round.

    `ping` probes one address for method "icmp" (pass `Pingers.ping` or `Pinger.ping`), or
    `ping_all` all of them at once (`Pinger.ping_all`, preferred: no task per target);
    ValueError if both are missing then. "tcp" uses tcp_probe, "exec" exec_probe;
    "relayd" runs `relayctl show summary` and counts the hosts up.
    """
    start = trio.current_time()
    deadline = upstream.timeout + margin
    if upstream.method == "relayd":
        return await _relayd_round(upstream, relayctl, start)
    if upstream.method == "exec":
        command = ExecResult(False, None, deadline, "", "round deadline passed")
        with trio.move_on_after(deadline):
            command = await exec_probe(upstream.command, upstream.timeout)
        return GroupResult(upstream.name, upstream.method, command.ok, int(command.ok), 1, (),
                           trio.current_time() - start, command)  # fmt: skip
    if upstream.method == "icmp" and ping_all is not None:
        rtts: Sequence[float | None] = [None] * len(upstream.targets)
        with trio.move_on_after(deadline):
            rtts = await ping_all(upstream.targets, upstream.timeout)
    else:
        probe = _target_probe(upstream, ping)
        rtts = await _probe_all(upstream.targets, probe, upstream.timeout, deadline)
    return judge(upstream, rtts, trio.current_time() - start)


def judge(upstream: UpstreamConfig, rtts: Sequence[float | None], duration: float) -> GroupResult:
    """The round of a tcp or icmp group from each target's seconds (None: no answer), in
    config order; an answer later than the group's timeout is no answer."""
    results = tuple(
        TargetResult(t, rtt if rtt is None or rtt <= upstream.timeout else None)
        for t, rtt in zip(upstream.targets, rtts, strict=True)
    )
    answered = sum(r.answered for r in results)
    return GroupResult(upstream.name, upstream.method, answered >= upstream.min_up, answered,
                       upstream.min_up, results, duration)  # fmt: skip


def _target_probe(upstream: UpstreamConfig, ping: TargetProbe | None) -> TargetProbe:
    if upstream.method == "icmp":
        if ping is None:
            raise ValueError(f'upstream {upstream.name}: method "icmp" needs a ping function')
        return ping
    port = upstream.port
    if port is None:
        raise ValueError(f'upstream {upstream.name}: method "tcp" needs a port')

    async def connect(address: str, timeout: float) -> float | None:
        return await tcp_probe(address, port, timeout)

    return connect


async def _probe_all(
    targets: Sequence[str], probe: TargetProbe, timeout: float, deadline: float
) -> list[float | None]:
    rtts: list[float | None] = [None] * len(targets)

    async def one(i: int) -> None:
        with trio.move_on_after(timeout):
            rtts[i] = await probe(targets[i], timeout)

    with trio.move_on_after(deadline):
        async with trio.open_nursery() as nursery:
            for i in range(len(targets)):
                nursery.start_soon(one, i)
    return rtts


async def _relayd_round(upstream: UpstreamConfig, relayctl: str, start: float) -> GroupResult:
    """One relayd round: good when the relay or table has at least min_up hosts up.

    relayd not answering (relayctl fails, hangs or prints what cannot be read), or a relay or
    table that relayd does not have, is a bad round: this node cannot serve the VIP.
    """
    where = f"relay {upstream.relay}" if upstream.relay is not None else f"table {upstream.table}"
    hosts: tuple[TargetResult, ...] = ()
    note = f"relayctl: no answer within {upstream.timeout:g}s"
    with trio.move_on_after(upstream.timeout):
        try:
            done = await run((relayctl, "show", "summary"), upstream.timeout)
        except RunTimeout:
            pass
        except OSError as exc:
            note = f"{relayctl}: cannot run: {exc.strerror or exc}"
        else:
            note, hosts = _relayd_hosts(upstream, where, done.returncode, done.stdout, done.stderr)
    up = sum(h.answered for h in hosts)
    good = up >= upstream.min_up and bool(hosts)
    return GroupResult(upstream.name, upstream.method, good, up, upstream.min_up, hosts,
                       trio.current_time() - start, None, note)  # fmt: skip


def _relayd_hosts(
    upstream: UpstreamConfig, where: str, code: int, stdout: str, stderr: str
) -> tuple[str, tuple[TargetResult, ...]]:
    if code != 0:
        return (first_line(stderr) or first_line(stdout) or f"relayctl: exit {code}"), ()
    try:
        summary = parse_summary(stdout)
    except RelaydError as exc:
        return f"relayctl: cannot read its output: {exc}", ()
    tables = [
        t
        for s in summary.services
        for t in s.tables
        if (upstream.relay is not None and s.name == upstream.relay)
        or (upstream.table is not None and upstream.table in (t.name, t.base))
    ]
    if not tables:
        return f"relayd has no {where}", ()
    hosts = tuple(TargetResult(h.name, 0.0 if h.up else None) for t in tables for h in t.hosts)
    up = sum(h.answered for h in hosts)
    return f"{up}/{len(hosts)} hosts up in {where} (min_up {upstream.min_up})", hosts
