"""[hooks]: argv lists run once per event, in order, never blocking the supervisor.

`fire()` only queues (it never waits); one worker task runs the queued hooks one after the
other, each under `hooks.timeout` (its process group is killed past it), with the details in
CARPD_* environment variables, and logs what they printed. ifstated(8) runs its actions
synchronously and blocks; carpd-py does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import trio

from .config import HooksConfig
from .logsetup import Log
from .run import RunTimeout, run

EVENTS = ("demote", "restore", "role_change")
QUEUE = 256  # events waiting at most; past that a hook is dropped (and that is logged)


class HookRunner:
    def __init__(self, config: HooksConfig, log: Log) -> None:
        self.config = config
        self.log = log
        self._send, self._recv = trio.open_memory_channel[
            tuple[str, tuple[str, ...], dict[str, str]]
        ](QUEUE)
        self.ran = 0
        self.failed = 0
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()

    def fire(self, event: str, env: Mapping[str, str]) -> None:
        argv: tuple[str, ...] = getattr(self.config, f"on_{event}", ())
        if not argv:
            return
        full = {"CARPD_EVENT": event, **{f"CARPD_{k.upper()}": v for k, v in env.items()}}
        try:
            self._send.send_nowait((event, argv, full))
        except trio.WouldBlock:
            self.failed += 1
            self.log.error("hook queue full: hook not run", hook=f"on_{event}")
            return
        if self._pending == 0:
            self._idle = trio.Event()
        self._pending += 1

    async def drained(self) -> None:
        """Wait until every queued hook has run."""
        await self._idle.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for event, argv, env in self._recv:
            try:
                await self._run_one(event, argv, env)
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def _run_one(self, event: str, argv: tuple[str, ...], env: dict[str, str]) -> None:
        hook = f"on_{event}"
        try:
            done = await run(argv, self.config.timeout, env={**os.environ, **env})
        except RunTimeout:
            self.failed += 1
            self.log.error("hook timed out, killed", hook=hook, timeout=self.config.timeout)
            return
        except OSError as exc:
            self.failed += 1
            self.log.error("hook could not be started", hook=hook, error=exc.strerror)
            return
        self.ran += 1
        for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
            for line in text.splitlines()[:20]:
                self.log.info("hook output", hook=hook, stream=stream, line=line)
        if done.returncode != 0:
            self.failed += 1
            self.log.error("hook failed", hook=hook, exit=done.returncode)
        else:
            self.log.info("hook done", hook=hook)
