"""Kernel log lines of the simulated nodes: carp state transitions and demotions."""

from __future__ import annotations

import time
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is not imported at run time: the executables start fast
if TYPE_CHECKING:
    from typing import Any

# syslog levels (sys/syslog.h) used by CARP_LOG
LOG_CRIT, LOG_ERR, LOG_WARNING = 2, 3, 4


@dataclass(frozen=True)
class SimEvent:
    """One line the kernel would log (`logged`) or would log at a higher net.inet.carp.log.

    Every carp state change is an event, logged or not. `text` is what follows `/bsd: ` in
    /var/log/messages, e.g. `carp0: state transition: BACKUP -> MASTER`.
    """

    seq: int
    time: float
    node: str
    level: int
    text: str
    logged: bool
    iface: str | None = None
    vhid: int | None = None
    old: str | None = None  # state transitions only
    new: str | None = None

    @property
    def is_transition(self) -> bool:
        return self.new is not None

    def syslog_line(self, hostname: str) -> str:
        """`Jul  8 12:34:56 fw1 /bsd: carp0: state transition: BACKUP -> MASTER`."""
        stamp = time.strftime("%b %e %H:%M:%S", time.localtime(self.time))
        return f"{stamp} {hostname} /bsd: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "node": self.node,
            "level": self.level,
            "text": self.text,
            "logged": self.logged,
            "iface": self.iface,
            "vhid": self.vhid,
            "old": self.old,
            "new": self.new,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SimEvent:
        return cls(**d)


@dataclass(frozen=True)
class SimCommand:
    """One command line a node's executables ran on the write path (not a kernel log line).

    `time` is the wall clock (time.time()) at which the command was applied, under the world's
    lock: what the network lab's benchmark reads as the moment carpd-py acted, e.g. its first
    `ifconfig carp0 advskew 240` after a fault. Kept in `STATE.commands`, one JSON object a line.
    """

    time: float
    node: str
    argv: tuple[str, ...]  # ("ifconfig", "carp0", "advskew", "240")
    code: int  # the exit status

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "node": self.node, "argv": list(self.argv), "code": self.code}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SimCommand:
        return cls(time=d["time"], node=d["node"], argv=tuple(d["argv"]), code=d["code"])
