"""One daemon per state file: an exclusive flock(2) on `<state_file>.lock`, held for life.

Two daemons on one state file would each take the other's 240 for a hand change and write
it down as a baseline. The lock is tied to the open file, so the kernel drops it when the
process ends however it ends (SIGKILL, a crash): there is never a stale lock to clean up.
The file holds the holder's pid, for the message the second daemon prints; the file itself
is never removed (removing it would let a third daemon lock a new file beside the old lock).

Take it in the process that runs the daemon, after any fork: `fcntl.flock` locks are
shared by a forked child, and the descriptor is close-on-exec, so the commands the daemon
runs never hold it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from dataclasses import dataclass


class LockError(Exception):
    """Another process holds the lock (or it cannot be taken); the message says which."""


@dataclass(frozen=True)
class StateLock:
    path: str
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def lock_path(state_file: str) -> str:
    return state_file + ".lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"


def acquire(state_file: str) -> StateLock:
    """Lock `state_file` for this process, without waiting. LockError names the holder."""
    path = lock_path(state_file)
    directory = os.path.dirname(os.path.abspath(path))
    # The lock is held on a read-only descriptor (flock(2) needs no more), so that the file
    # system stays free to be remounted read-only under the daemon; the pid goes in through
    # a second descriptor, closed at once (closing it does not drop a flock lock).
    writer: int | None = None
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        pass  # a read-only file system: an existing lock file can still be locked
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise LockError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockError(
                    f"another carpd-py ({holder}) holds the state file {state_file} "
                    f"(lock {path}); stop it first"
                ) from None
            raise LockError(f"cannot lock {path}: {exc.strerror or exc}") from None
        if writer is not None:
            # Best effort: a full disk must not stop the start-up ("pid unknown" then).
            with contextlib.suppress(OSError):
                mine = f"{os.getpid()}\n".encode()
                os.pwrite(writer, mine, 0)
                os.ftruncate(writer, len(mine))
        return StateLock(path, fd)
    finally:
        if writer is not None:
            os.close(writer)
