"""The supervisor's probes: one ICMP socket per address family in use, tcp and exec rounds."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import trio

from .config import Config, UpstreamConfig
from .logsetup import Log
from .probes import Pinger, family_of, probe_group


@dataclass(frozen=True)
class UpstreamRound:
    good: bool
    failed: tuple[str, ...]  # targets that did not answer ("command" for exec)
    duration: float
    detail: str


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
        pinger = self.pingers.get(family_of(address))
        if pinger is None:
            await trio.sleep(timeout)  # no socket: a probe that gets no answer
            return None
        return await pinger.ping(address, timeout)

    async def group(self, upstream: UpstreamConfig) -> UpstreamRound:
        ping = self.ping if upstream.method == "icmp" else None
        result = await probe_group(upstream, ping, relayctl=self.relayctl)
        if result.command is not None:
            failed: tuple[str, ...] = () if result.good else ("command",)
            return UpstreamRound(result.good, failed, result.duration, result.command.summary)
        failed = tuple(t.target for t in result.targets if not t.answered)
        if result.note:
            failed = failed or (() if result.good else ("relayd",))
            return UpstreamRound(result.good, failed, result.duration, result.note)
        detail = f"{result.answered}/{len(result.targets)} answered (min_up {result.min_up})"
        return UpstreamRound(result.good, failed, result.duration, detail)
