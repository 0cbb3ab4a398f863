"""carpd-py [-dnv] [-f FILE]: the daemon, in ifstated(8)'s conventions.

-d stays in the foreground and logs to stderr; without it, logs go to syslog. carpd-py does
not fork itself (rc.d runs it with rc_bg=YES). SIGHUP reloads the config (a config that fails
the check is logged and the old one keeps running); SIGTERM and SIGINT stop it, after an
action under way has finished.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import psutil
import trio

from . import __version__
from .config import DEFAULT_PATH, Config, ConfigError, load_config
from .control import ControlSocketError, RequestError, SupervisorControl, serve_control
from .excgroup import leaves
from .hooks import HookRunner
from .host import OpenBSDHost
from .logsetup import Log, setup
from .metrics import MetricsServer, parse_listen, start_metrics_server, stop_metrics_server
from .pairing import Pairing
from .peer import Channel, KeyFileError, load_key
from .prober import Probes
from .supervisor import Supervisor

# Keys a reload cannot change in a running process: they need a restart.
RESTART_ONLY = ("state_file", "metrics", "log", "control", "peer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="carpd-py",
        description="Demote an OpenBSD carp node on pfsync or upstream loss, restore it exactly.",
    )
    p.add_argument("-d", action="store_true", help="stay in the foreground, log to stderr")
    p.add_argument("-n", action="store_true", help="check the configuration and exit")
    p.add_argument("-v", action="count", default=0, help="more detail (debug)")
    p.add_argument("-f", dest="file", metavar="FILE", default=DEFAULT_PATH,
                   help=f"configuration file (default {DEFAULT_PATH})")  # fmt: skip
    p.add_argument("-V", "--version", action="version", version=f"carpd-py {__version__}")
    return p


class Daemon:
    """The imperative shell around the supervisor: signals, reload, the control requests."""

    def __init__(self, config: Config, log: Log) -> None:
        self.config = config
        self.log = log
        self.host = OpenBSDHost(config.platform, groups=(config.demote.group,))
        self.probes = Probes(log)
        self.hooks = HookRunner(config.hooks, log)
        self.supervisor = Supervisor(
            config, self.host, self.probes, log, boot_time=psutil.boot_time(), hooks=self.hooks
        )
        self.pairing: Pairing | None = None
        if config.peer is not None:
            # Bound now, before trio runs (and before a detach): a bind failure is reported.
            channel = Channel(config.peer, load_key(config.peer.key_file), log)
            channel.bind()
            self.pairing = Pairing(channel, log)
            self.supervisor.pair = self.pairing
        self._reloads: trio.MemorySendChannel[None] | None = None
        self._metrics: tuple[MetricsServer, threading.Thread] | None = None

    # --- reload ------------------------------------------------------------------------

    def check_reload(self) -> tuple[Config | None, list[str]]:
        """Parse the file into a new config; on any problem keep the old one (like ifstated)."""
        try:
            new = load_config(self.config.path)
        except ConfigError as exc:
            return None, exc.problems
        old = self.config
        if new.demote.method != old.demote.method and self.supervisor.memory.demoted:
            return None, [
                f"{new.path}: demote.method: cannot change from {old.demote.method} to "
                f"{new.demote.method} while demoted; restore first or restart"
            ]
        kept = [k for k in RESTART_ONLY if getattr(new, k) != getattr(old, k)]
        if kept:
            self.log.warning("reload: these need a restart and keep their old values", keys=kept)
            new = replace(new, **{k: getattr(old, k) for k in kept})
        return new, []

    async def reload(self) -> list[str]:
        new, problems = self.check_reload()
        if new is None:
            for problem in problems:
                self.log.error("reload failed, keeping the old configuration", problem=problem)
            return problems
        self.config = new
        self.host.platform = new.platform
        self.host.groups = (new.demote.group,)
        self.hooks.config = new.hooks
        await self.probes.ensure(new)
        self.supervisor.reconfigure(new)
        self.log.notice("configuration reloaded", path=new.path)
        return []

    # --- control requests (see control.py) ---------------------------------------------

    def reload_request(self) -> dict[str, Any]:
        """carpctl reload: check now and answer; apply in the supervisor's nursery."""
        new, problems = self.check_reload()
        if new is None:
            raise RequestError("the new configuration is refused: " + "; ".join(problems))
        if self._reloads is None:
            raise RequestError("carpd-py is not running yet")
        try:
            self._reloads.send_nowait(None)
        except trio.WouldBlock:
            raise RequestError("reloads are already queued") from None
        return {"reloaded": new.path}

    # --- running -----------------------------------------------------------------------

    async def serve(self) -> None:
        # The signals are ours from the first moment: a SIGTERM during start-up is handled.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            self.supervisor.load()
            try:
                await self._run_all(signals)
            finally:
                self._stop_services()
            await self.supervisor.shutdown()

    async def _run_all(self, signals: AsyncIterator[int]) -> None:
        send, recv = trio.open_memory_channel[None](8)
        self._reloads = send
        async with trio.open_nursery() as nursery:
            await nursery.start(self.probes.run)
            await self.probes.ensure(self.config)
            await nursery.start(self.hooks.run)
            if self.pairing is not None:
                await nursery.start(self.pairing.channel.run)
                await nursery.start(self.pairing.heartbeat, self.config.interval)
            await self._start_services(nursery)
            nursery.start_soon(self._reloader, recv)
            await nursery.start(self.supervisor.run)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    with contextlib.suppress(trio.WouldBlock):  # reloads already queued
                        send.send_nowait(None)
                    continue
                self.log.notice("stopping", signal=signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()

    async def _reloader(self, recv: trio.MemoryReceiveChannel[None]) -> None:
        async for _ in recv:
            await self.reload()

    async def _start_services(self, nursery: trio.Nursery) -> None:
        """The control socket and the metrics endpoint (a thread that reads only the
        immutable Status the supervisor publishes)."""
        control = SupervisorControl(self.supervisor, self.reload_request)
        await nursery.start(
            partial(serve_control, self.config.control.socket, control, log=self.log)
        )
        if self.config.metrics.listen:
            self._metrics = start_metrics_server(
                self.config.metrics.listen, lambda: self.supervisor.status
            )
            host, _ = parse_listen(self.config.metrics.listen)
            where = f"[{host}]" if ":" in host else host
            self.log.info("metrics", url=f"http://{where}:{self._metrics[0].port}/metrics")

    def _stop_services(self) -> None:
        if self._metrics is not None:
            stop_metrics_server(*self._metrics)
            self._metrics = None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    if args.n and config.peer is not None:
        try:
            load_key(config.peer.key_file)
        except KeyFileError as exc:
            print(f"{config.path}: peer.key_file: {exc}", file=sys.stderr)
            return 1
    if args.n:
        print("configuration OK")
        return 0
    level = "debug" if args.v else config.log.level
    trouble = setup(
        level, foreground=args.d, syslog_socket=config.log.socket, facility=config.log.facility
    )
    log = Log()
    if trouble:
        log.error(trouble)
    try:
        daemon = Daemon(config, log)
    except KeyFileError as exc:
        log.error("cannot run", error=str(exc))
        return 1
    except OSError as exc:
        log.error("cannot run", error=str(exc))
        return 1
    try:
        trio.run(daemon.serve)
    except KeyboardInterrupt:  # ^C before the signal handler was in place
        return 130
    except Exception as exc:  # never a traceback; one line says what broke
        errors = leaves(exc)
        if all(isinstance(e, ControlSocketError) for e in errors):
            log.error("cannot open the control socket", error="; ".join(map(str, errors)))
            return 1
        if all(isinstance(e, OSError) for e in errors):
            log.error("cannot run", error="; ".join(str(e) for e in errors))
            return 1
        log.error("internal error, stopping", error="; ".join(repr(e) for e in errors))
        return 70  # EX_SOFTWARE
    return 0


if __name__ == "__main__":
    sys.exit(main())
