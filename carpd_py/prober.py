"""The supervisor's probes: one ICMP socket per address family in use, tcp and exec rounds."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from .config import Config, UpstreamConfig
from .logsetup import Log
from .probes import GroupResult, Pinger, family_of, judge, probe_group


@dataclass(frozen=True)
class UpstreamRound:
    good: bool
    failed: tuple[str, ...]  # targets that did not answer ("command" for exec)
    duration: float
    detail: str


@dataclass(frozen=True)
class IcmpRound:
    """The ICMP probes of one round, sent as one batch (`Probes.icmp_round`)."""

    peer: float | None  # the sync peer's round-trip time; None: no answer (or not asked)
    peer_took: float  # seconds until its answer, or the batch's wait
    groups: tuple[UpstreamRound, ...]  # in the order asked


def icmp_families(config: Config) -> set[socket.AddressFamily]:
    addresses = [u for g in config.upstream if g.method == "icmp" for u in g.targets]
    if config.sync is not None and config.sync.peer is not None:
        addresses.append(config.sync.peer)
    return {family_of(a) for a in addresses}


class Probes:
    """Starts the Pingers a config needs, in its own nursery, and keeps them for reloads."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.pingers: dict[socket.AddressFamily, Pinger] = {}
        self._nursery: trio.Nursery | None = None
        self.relayctl = "/usr/sbin/relayctl"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def ensure(self, config: Config) -> None:
        """Open the ICMP sockets the config needs (a failure is logged: those probes fail)."""
        assert self._nursery is not None, "Probes.run() first"
        self.relayctl = config.platform.relayctl
        for family in icmp_families(config) - set(self.pingers):
            pinger = Pinger(family)
            try:
                await self._nursery.start(pinger.run)
            except OSError as exc:
                self.log.error(
                    "cannot open an ICMP socket: icmp probes will fail",
                    family=family.name,
                    error=exc.strerror or str(exc),
                )
                continue
            self.pingers[family] = pinger

    async def ping(self, address: str, timeout: float) -> float | None:
        (rtt,) = await self.ping_all((address,), timeout)
        return rtt

    async def ping_all(self, addresses: Sequence[str], timeout: float) -> list[float | None]:
        """Every address at once, on its family's socket: round-trip times in order, None
        for no answer. One family (the usual case): no task of its own."""
        families = {family_of(a) for a in addresses}
        if len(families) == 1:
            (family,) = families
            pinger = self.pingers.get(family)
            if pinger is not None:
                return await pinger.ping_all(addresses, timeout)
        rtts: list[float | None] = [None] * len(addresses)

        async def one_family(family: socket.AddressFamily) -> None:
            pinger = self.pingers.get(family)
            index = [i for i, a in enumerate(addresses) if family_of(a) == family]
            if pinger is None:
                await trio.sleep(timeout)  # no socket: probes that get no answer
                return
            for i, rtt in zip(
                index, await pinger.ping_all([addresses[i] for i in index], timeout), strict=True
            ):
                rtts[i] = rtt

        async with trio.open_nursery() as nursery:
            for family in families:
                nursery.start_soon(one_family, family)
        return rtts

    async def icmp_round(
        self, peer: tuple[str, float] | None, groups: Sequence[UpstreamConfig]
    ) -> IcmpRound:
        """The sync peer (address, timeout) and every target of the icmp `groups` in one
        batch: the echoes leave together, one wait for all (`ping_all`), each answer judged
        against its own timeout. The supervisor's idle round: no task per check."""
        addresses = [peer[0]] if peer is not None else []
        timeouts = [peer[1]] if peer is not None else []
        for g in groups:
            addresses.extend(g.targets)
            timeouts.extend([g.timeout] * len(g.targets))
        start = trio.current_time()
        rtts = await self.ping_all(addresses, max(timeouts, default=0.0))
        took = trio.current_time() - start
        i = 1 if peer is not None else 0
        answer = rtts[0] if peer is not None else None
        if answer is not None and peer is not None and answer > peer[1]:
            answer = None
        rounds = []
        for g in groups:
            mine = rtts[i : i + len(g.targets)]
            i += len(g.targets)
            heard = [r for r in mine if r is not None and r <= g.timeout]
            duration = max(heard) if len(heard) == len(mine) else min(took, g.timeout)
            rounds.append(self._summary(judge(g, mine, duration)))
        return IcmpRound(answer, took if answer is None else answer, tuple(rounds))

    async def group(self, upstream: UpstreamConfig) -> UpstreamRound:
        result = await probe_group(upstream, relayctl=self.relayctl, ping_all=self.ping_all)
        return self._summary(result)

    @staticmethod
    def _summary(result: GroupResult) -> UpstreamRound:
        if result.command is not None:
            failed: tuple[str, ...] = () if result.good else ("command",)
            return UpstreamRound(result.good, failed, result.duration, result.command.summary)
        failed = tuple(t.target for t in result.targets if not t.answered)
        if result.note:
            failed = failed or (() if result.good else ("relayd",))
            return UpstreamRound(result.good, failed, result.duration, result.note)
        detail = f"{result.answered}/{len(result.targets)} answered (min_up {result.min_up})"
        return UpstreamRound(result.good, failed, result.duration, detail)
