"""Run one argv under a deadline. No shell, ever; on timeout the whole process group dies."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import trio


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class RunTimeout(Exception):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(f"{argv[0]}: no answer within {timeout:g}s, killed")
        self.argv = tuple(argv)
        self.timeout = timeout


async def _kill_group(proc: trio.Process) -> None:
    # start_new_session=True made the child a group leader: kill it and all it started.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


async def run(
    argv: Sequence[str], timeout: float, *, env: Mapping[str, str] | None = None
) -> Completed:
    """Run `argv` and return its exit status and output; raise RunTimeout past `timeout`.

    OSError (no such file, not executable) propagates to the caller, which types it.
    """
    with trio.move_on_after(timeout) as scope:
        proc = await trio.run_process(
            list(argv),
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            start_new_session=True,
            deliver_cancel=_kill_group,
            env=None if env is None else dict(env),
        )
    if scope.cancelled_caught:
        raise RunTimeout(argv, timeout)
    return Completed(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=proc.stdout.decode("utf-8", "replace"),
        stderr=proc.stderr.decode("utf-8", "replace"),
    )
