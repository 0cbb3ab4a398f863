"""errno values as OpenBSD's strerror(3) prints them, and the early exit of a command."""

from __future__ import annotations

# OpenBSD's texts (lib/libc/gen/errlist.c), not the host's: ENXIO differs on Linux.
EPERM = "Operation not permitted"
ENOENT = "No such file or directory"
ENXIO = "Device not configured"
EEXIST = "File exists"
EINVAL = "Invalid argument"
ENOTTY = "Inappropriate ioctl for device"
EADDRNOTAVAIL = "Can't assign requested address"
EBUSY = "Device busy"


class Errno(Exception):
    """An ioctl failed; the message is the strerror text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Exit(Exception):
    """The simulated program ends here: err(3)/errx(3), usage(), or a normal early return."""

    def __init__(self, code: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(stderr.strip() or f"exit {code}")
        self.code = code
        self.stderr = stderr
        self.stdout = stdout
