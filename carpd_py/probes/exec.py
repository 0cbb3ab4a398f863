"""Exec probe: run a command under a deadline; exit status 0 is good, anything else is bad."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import trio

from ..run import RunTimeout, run

LINE_MAX = 200  # characters of output kept for the logs


@dataclass(frozen=True)
class ExecResult:
    ok: bool  # exited 0 within the deadline
    returncode: int | None  # None: timed out (process group killed) or could not be started
    duration: float  # seconds
    output: str  # first non-empty line of stderr, else of stdout; "" if none
    error: str | None = None  # why there is no exit status

    @property
    def summary(self) -> str:
        """One line for the logs: "exit 0", "exit 1: <output>", or the error."""
        if self.error is not None:
            return self.error
        assert self.returncode is not None
        status = (
            f"killed by signal {-self.returncode}"
            if self.returncode < 0
            else f"exit {self.returncode}"
        )
        return f"{status}: {self.output}" if self.output else status


def first_line(text: str) -> str:
    """The first non-blank line of `text`, stripped and cut to LINE_MAX characters."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:LINE_MAX]
    return ""


async def exec_probe(
    argv: Sequence[str], timeout: float, *, env: Mapping[str, str] | None = None
) -> ExecResult:
    """Run `argv` (no shell) with at most `timeout` seconds; past it, its whole process group
    is killed and the result is bad. A command that cannot be started is bad too."""
    if not argv:
        raise ValueError("exec_probe: empty argv")
    start = trio.current_time()
    try:
        done = await run(argv, timeout, env=env)
    except RunTimeout:
        error = f"{argv[0]}: no exit within {timeout:g}s, process group killed"
        return ExecResult(False, None, trio.current_time() - start, "", error)
    except OSError as exc:
        error = f"{argv[0]}: cannot run: {exc.strerror or exc}"
        return ExecResult(False, None, trio.current_time() - start, "", error)
    output = first_line(done.stderr) or first_line(done.stdout)
    return ExecResult(done.returncode == 0, done.returncode, trio.current_time() - start, output)
