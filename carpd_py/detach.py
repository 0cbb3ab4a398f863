"""Detach when ready, the way OpenBSD's daemons do: `rcctl start` must see a start that fails.

Without -d, carpd-py forks BEFORE trio starts (trio never runs in the parent). The child
starts a new session and runs the whole start-up (state file, control socket, metrics
listener, peer sockets, first host read); the parent waits on a pipe for the child's word:

    ready          the parent exits 0: everything that can fail at start has been done
    any other text the parent prints it on stderr and exits 1 (the child exits too)
    nothing (EOF)  the child died during start-up: the parent says so and exits 1
    no word in time the parent stops the child and exits 1 (on ^C: 130)

Once ready, the child points its stdin, stdout and stderr at /dev/null (it logs to syslog)
and carries on alone. The start-up code only sees a `Startup`: `ready()` when everything is
up, `failed(reason)` when it cannot start; with -d both do nothing beyond the log.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from typing import Protocol

READY = b"ready\n"
STOP_WAIT = 5.0  # seconds a child that missed the deadline gets to stop after SIGTERM


class Startup(Protocol):
    """What the daemon's start-up tells whoever started it."""

    def ready(self) -> None:
        """Everything that can fail at start has been done: carpd-py is running."""

    def failed(self, reason: str) -> None:
        """carpd-py cannot start, for this reason (one line for the operator)."""


class Foreground:
    """-d: no parent waits; the log on stderr already says everything."""

    def ready(self) -> None:
        pass

    def failed(self, reason: str) -> None:
        pass


class Detached:
    """The child's end of the pipe. Only the first word counts; later calls do nothing."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def ready(self) -> None:
        if self._fd is None:
            return
        # First let go of the terminal (or the pipes of whoever ran us), so that the parent's
        # caller is not kept waiting for their EOF, then say so.
        _stdio_to_devnull()
        self._say(READY)

    def failed(self, reason: str) -> None:
        if self._fd is not None:
            self._say(reason.encode("utf-8", "replace") or b"cannot start")

    def _say(self, word: bytes) -> None:
        fd, self._fd = self._fd, None
        assert fd is not None
        with contextlib.suppress(OSError):  # the parent gave up waiting: nobody to tell
            while word:
                word = word[os.write(fd, word) :]
        os.close(fd)


def _stdio_to_devnull() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def detach(timeout: float, prog: str = "carpd-py") -> Detached | int:
    """Fork. In the child: a new session, and the `Detached` to report through. In the
    parent: wait (at most `timeout` seconds) for the child's word and return the exit status
    of the command: 0 once the child is ready, 1 otherwise, with the reason on stderr."""
    rfd, wfd = os.pipe()  # not inherited by the commands the daemon runs (O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        os.setsid()
        os.chdir("/")
        return Detached(wfd)
    os.close(wfd)
    try:
        word, complete = _read_word(rfd, timeout)
    except KeyboardInterrupt:  # ^C while waiting: the operator gives up on this start
        _stop(pid)
        print(f"{prog}: interrupted before it was ready; stopped it", file=sys.stderr)
        return 130
    finally:
        os.close(rfd)
    if word == READY:
        return 0
    if word:
        # It said why it cannot start and is on its way out: once the command has failed,
        # nothing of it may be left running (rc.subr would find it with rc_check).
        _stop(pid, grace=STOP_WAIT)
        text = word.decode("utf-8", "replace").rstrip("\n")
        print(f"{prog}: {text}", file=sys.stderr)
        return 1
    if not complete:
        _stop(pid)
        print(f"{prog}: not ready within {timeout:g}s; stopped it", file=sys.stderr)
        return 1
    print(f"{prog}: {_died(pid)} during start-up, without a word", file=sys.stderr)
    return 1


def _read_word(fd: int, timeout: float) -> tuple[bytes, bool]:
    """What the child wrote until it closed its end, and whether it did within `timeout`."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        if not poller.poll(left * 1000):
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _died(pid: int) -> str:
    """How the child ended; it closed the pipe without a word, so it has ended or is ending."""
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "it exited"
        if done:
            if os.WIFSIGNALED(status):
                return f"it was killed by {signal.Signals(os.WTERMSIG(status)).name}"
            return f"it exited with status {os.waitstatus_to_exitcode(status)}"
        time.sleep(0.02)
    return "it closed its pipe"


def _stop(pid: int, grace: float = 0.0) -> None:
    """Wait `grace` seconds for the child to exit by itself, then SIGTERM, then SIGKILL if
    that does not stop it either; reap it."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig is None else STOP_WAIT)
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
