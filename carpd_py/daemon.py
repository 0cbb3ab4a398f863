"""carpd-py [-dnv] [-f FILE]: the daemon, in ifstated(8)'s conventions.

-d stays in the foreground and logs to stderr. Without it, carpd-py detaches once it is
ready (see detach.py): main() parses the arguments and the config, forks before trio starts,
and the parent waits for the child, which runs the whole start-up in trio, says `ready()`
and logs to syslog from then on. SIGHUP reloads the config (a config that fails the check is
logged and the old one keeps running); SIGTERM and SIGINT stop it, after an action under way
has finished.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

import psutil
import trio

from . import __version__
from .config import DEFAULT_PATH, Config, ConfigError, load_config
from .control import ControlSocketError, RequestError, SupervisorControl, serve_control
from .detach import Detached, Foreground, Startup, detach
from .excgroup import leaves
from .hooks import HookRunner
from .host import HostError, OpenBSDHost
from .lock import LockError, StateLock, acquire
from .logsetup import Log, setup
from .metrics import MetricsServer, parse_listen, start_metrics_server, stop_metrics_server
from .model import HostView
from .pair import NodeView
from .pairing import Pairing
from .peer import Channel, KeyFileError, load_key
from .prober import Probes
from .state import StatePathError, check_path
from .supervisor import GRACE, Supervisor
from .verifier import AGE, SECTION, Verifier, VerifyCollector, check_section, with_roles

# Keys a reload cannot change in a running process: they need a restart.
RESTART_ONLY = ("state_file", "metrics", "log", "control", "peer")
RELOAD_DEADLINE = 3.0  # seconds to read and check the file, in a thread: the loop goes on


async def read_config(path: str) -> Config:
    """load_config in a worker thread under RELOAD_DEADLINE; ConfigError for any failure.
    A thread past the deadline is abandoned (the size limits bound what it can still cost)."""
    with trio.move_on_after(RELOAD_DEADLINE):
        return await trio.to_thread.run_sync(load_config, path, abandon_on_cancel=True)
    raise ConfigError([f"{path}: cannot check: not done within {RELOAD_DEADLINE:g}s"])


START_SLACK = 10.0  # seconds the start-up may take beyond the first host read's deadline


class StartError(Exception):
    """carpd-py cannot start; the message says why, for the operator."""


def start_timeout(config: Config) -> float:
    """How long the parent waits for a detaching child to be ready: the first host read's
    deadline and some slack for the rest (well within rc.subr's daemon_timeout of 30s)."""
    return 2 * config.platform.command_timeout + GRACE + START_SLACK


def build_parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - see parse_args

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


@dataclass
class Args:
    d: bool = False  # foreground, log to stderr
    n: bool = False  # check the configuration and exit
    v: int = 0  # more detail
    file: str = DEFAULT_PATH


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """The arguments, as build_parser() parses them. The usual command lines (rc.d's
    `-f FILE`, `-d`, `-n`, `-v`, clustered as `-dv`) are read here; anything else (-V, --help,
    a mistake) goes to argparse, for its messages. argparse is imported only then: it and
    gettext would stay resident (0.4 MB) for a parse done once."""
    words = list(sys.argv[1:] if argv is None else argv)
    out = Args()
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-f" and i + 1 < len(words) and not words[i + 1].startswith("-"):
            out.file = words[i + 1]
            i += 2
            continue
        if len(word) < 2 or word[0] != "-" or not set(word[1:]) <= set("dnv"):
            parsed = build_parser().parse_args(words)
            return Args(d=parsed.d, n=parsed.n, v=parsed.v, file=parsed.file)
        for flag in word[1:]:
            if flag == "v":
                out.v += 1
            else:
                setattr(out, flag, True)
        i += 1
    return out


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
        self.verifier = Verifier(config, log, self._view, self._share, self._peer_report)
        if self.pairing is not None:
            # the pair channel carries both nodes' `carpctl verify` reports
            self.pairing.channel.sections[SECTION] = check_section
            self.pairing.sections = self.verifier.section
        self._reloads: trio.MemorySendChannel[Config | None] | None = None
        self.lock: StateLock | None = None
        self._metrics: tuple[MetricsServer, threading.Thread] | None = None

    def _view(self) -> HostView | None:
        return self.supervisor.status.view

    def _peer_report(self) -> tuple[Any, float] | None:
        """The "verify" section of the peer's last message (checked on arrival) with the
        roles of the view that came with it, and when the peer read it, on this node's
        clock; None before any."""
        last = self.pairing.channel.last if self.pairing is not None else None
        if last is None or SECTION not in last.document:
            return None
        section = last.document[SECTION]
        if isinstance(last.view, NodeView):
            section = with_roles(section, last.view.roles)
        return section, last.at - float(section[AGE])

    def _share(self) -> int:
        memory = self.supervisor.memory
        return memory.share if self.config.demote.method == "carpdemote" else 0

    # --- reload ------------------------------------------------------------------------

    async def check_reload(self) -> tuple[Config | None, list[str]]:
        """Parse the file into a new config; on any problem keep the old one (like ifstated)."""
        try:
            new = await read_config(self.config.path)
        except ConfigError as exc:
            return None, exc.problems
        return self._vet(new)

    def _vet(self, new: Config) -> tuple[Config | None, list[str]]:
        """What a running daemon can take of a valid config (again when applying: the node
        may have been demoted since the check)."""
        old = self.config
        if new.demote.method != old.demote.method and self.supervisor.memory.demoted:
            return None, [
                f"{new.path}: demote.method: cannot change from {old.demote.method} to "
                f"{new.demote.method} while demoted; restore first or restart"
            ]
        kept = [k for k in RESTART_ONLY if getattr(new, k) != getattr(old, k)]
        if kept:
            new = replace(new, **{k: getattr(old, k) for k in kept})
        if new.platform.route_socket != old.platform.route_socket:  # opened once, at start
            kept.append("platform.route_socket")
            route = old.platform.route_socket
            new = replace(new, platform=replace(new.platform, route_socket=route))
        if kept:
            self.log.warning("reload: these need a restart and keep their old values", keys=kept)
        return new, []

    async def reload(self, checked: Config | None = None) -> list[str]:
        """Apply `checked` (a carpctl reload, checked already) or read the file (SIGHUP)."""
        new, problems = self._vet(checked) if checked is not None else await self.check_reload()
        if new is None:
            for problem in problems:  # at most MAX_PROBLEMS + 1 lines: config.py caps them
                self.log.error("reload failed, keeping the old configuration", problem=problem)
            return problems
        self.config = new
        self.host.platform = new.platform
        self.host.groups = (new.demote.group,)
        self.hooks.config = new.hooks
        self.verifier.config = new
        await self.probes.ensure(new)
        self.supervisor.reconfigure(new)
        self.log.notice("configuration reloaded", path=new.path)
        return []

    # --- control requests (see control.py) ---------------------------------------------

    async def reload_request(self) -> dict[str, Any]:
        """carpctl reload: check now and answer; apply in the supervisor's nursery."""
        new, problems = await self.check_reload()
        if new is None:
            raise RequestError("the new configuration is refused: " + "; ".join(problems))
        if self._reloads is None:
            raise RequestError("carpd-py is not running yet")
        try:
            self._reloads.send_nowait(new)  # applied as checked: the file is read once
        except trio.WouldBlock:
            raise RequestError("reloads are already queued") from None
        return {"reloaded": new.path}

    # --- running -----------------------------------------------------------------------

    def take_state(self) -> None:
        """Lock the state file for the life of this process (LockError: another daemon has
        it), before the state file is read and before the control socket is touched: a
        second daemon must not steal the socket path or write the file. Call it in the
        process that will run the daemon (after any fork)."""
        if self.lock is None:
            self.lock = acquire(self.config.state_file)

    async def serve(self, ready: Callable[[], None] = lambda: None) -> None:
        """Start everything that can fail at start, call `ready()`, run until a signal."""
        # The signals are ours from the first moment: a SIGTERM during start-up is handled.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            self.take_state()
            self.supervisor.load()
            try:
                await self._run_all(signals, ready)
            finally:
                self._stop_services()
            await self.supervisor.shutdown()

    async def _run_all(self, signals: AsyncIterator[int], ready: Callable[[], None]) -> None:
        send, recv = trio.open_memory_channel[Config | None](8)
        self._reloads = send
        async with trio.open_nursery() as nursery:
            await nursery.start(self.probes.run)
            await self.probes.ensure(self.config)
            await nursery.start(self.hooks.run)
            if self.pairing is not None:
                await nursery.start(self.pairing.channel.run)
                await nursery.start(self.pairing.heartbeat, self.config.interval)
            await self._start_services(nursery)
            await self._first_read()
            nursery.start_soon(self._reloader, recv)
            await nursery.start(self.supervisor.run)
            await nursery.start(self.verifier.run)
            ready()  # the last step of the start-up: what can fail at start comes before
            # What start-up made (modules, config, sockets) lives as long as the process: out
            # of the collector's sight, so that no collection walks it again (idle CPU).
            gc.collect()
            gc.freeze()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    with contextlib.suppress(trio.WouldBlock):  # reloads already queued
                        send.send_nowait(None)
                    continue
                self.log.notice("stopping", signal=signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()

    async def _reloader(self, recv: trio.MemoryReceiveChannel[Config | None]) -> None:
        async for checked in recv:
            await self.reload(checked)

    async def _start_services(self, nursery: trio.Nursery) -> None:
        """The control socket and the metrics endpoint (a thread that reads only the
        immutable Status the supervisor publishes)."""
        control = SupervisorControl(self.supervisor, self.reload_request, self.verifier)
        await nursery.start(
            partial(serve_control, self.config.control.socket, control, log=self.log)
        )
        listen = self.config.metrics.listen
        if listen:
            try:
                self._metrics = start_metrics_server(
                    listen,
                    lambda: self.supervisor.status,
                    extra=(VerifyCollector(lambda: self.verifier.last),),
                )
            except OSError as exc:
                raise StartError(
                    f"cannot listen for metrics on {listen}: {exc.strerror or exc}"
                ) from None
            host, _ = parse_listen(listen)
            where = f"[{host}]" if ":" in host else host
            self.log.info("metrics", url=f"http://{where}:{self._metrics[0].port}/metrics")

    async def _first_read(self) -> None:
        """Read the host once before going on: an ifconfig that cannot run or be read
        fails the start, with the reason, instead of an error in the log later."""
        limit = 2 * self.config.platform.command_timeout + GRACE
        try:
            with trio.fail_after(limit):
                await self.host.read()
        except trio.TooSlowError:
            raise StartError(f"cannot read the host: no answer within {limit:g}s") from None
        except HostError as exc:
            raise StartError(f"cannot read the host: {exc}") from None

    def _stop_services(self) -> None:
        if self._metrics is not None:
            stop_metrics_server(*self._metrics)
            self._metrics = None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and the config; then, without -d, fork and let the parent wait
    for the child's start-up (detach.py); the child (or -d) runs the daemon in trio."""
    args = parse_args(argv)
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    path_problem = check_path(config.state_file)  # the file system, not the config text
    if path_problem is not None:
        print(path_problem, file=sys.stderr)
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
    if args.d:
        return run(config, Foreground(), foreground=True, debug=bool(args.v))
    # The child leaves the working directory: a relative -f must still find the file on reload.
    config = replace(config, path=os.path.abspath(config.path))
    startup = detach(start_timeout(config))
    if not isinstance(startup, Detached):
        return startup  # the parent: the child is ready (0), or failed and said why (1)
    return run(config, startup, foreground=False, debug=bool(args.v))


def run(config: Config, startup: Startup, *, foreground: bool, debug: bool) -> int:
    """The daemon in this process: logging, then the start-up and the loop in trio."""
    level = "debug" if debug else config.log.level
    trouble = setup(
        level, foreground=foreground, syslog_socket=config.log.socket, facility=config.log.facility
    )
    log = Log()
    if trouble:
        log.error(trouble)
    try:
        daemon = Daemon(config, log)
    except (KeyFileError, OSError) as exc:  # the key file, or binding the peer's sockets
        log.error("cannot start", error=str(exc))
        startup.failed(str(exc))
        return 1
    try:
        trio.run(daemon.serve, startup.ready)
    except KeyboardInterrupt:  # ^C before the signal handler was in place
        return 130
    except Exception as exc:  # never a traceback; one line says what broke
        event, error, status = _failure(leaves(exc))
        log.error(event, error=error)
        startup.failed(_reason(event, error))
        return status
    return 0


def _failure(errors: list[BaseException]) -> tuple[str, str, int]:
    """(event, error, exit status) for what stopped the daemon."""
    if all(isinstance(e, (StartError, LockError, StatePathError)) for e in errors):
        return "cannot start", "; ".join(map(str, errors)), 1
    if all(isinstance(e, ControlSocketError) for e in errors):
        return "cannot open the control socket", "; ".join(map(str, errors)), 1
    if all(isinstance(e, (OSError, StartError, ControlSocketError)) for e in errors):
        return "cannot run", "; ".join(str(e) for e in errors), 1
    return "internal error, stopping", "; ".join(repr(e) for e in errors), 70  # EX_SOFTWARE


def _reason(event: str, error: str) -> str:
    """The line the waiting parent prints: a StartError's message says it all already."""
    return error if event == "cannot start" else f"{event}: {error}"


if __name__ == "__main__":
    sys.exit(main())
