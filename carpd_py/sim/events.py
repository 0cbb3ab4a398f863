"""What happens in the simulated kernel, with its simulated time: `SimEvent`.

Kinds (`SimEvent.kind`):

- "carp": a carp state transition of one vhost (iface, vhid, old, new); `text` is the kernel
  log line (carp_set_state());
- "demote": a demote counter of a group changed (group, count; iface is the interface that
  moved it); `text` is carp_group_demote_adj()'s log line, empty for `carpdemote` from
  userland (if_setgroupattribs() logs nothing);
- "link": an interface's flags or link state changed (iface, index, flags, link_state, `new`
  is the link state's name) -- what OpenBSD announces with RTM_IFINFO;
- "arrival" / "departure": an interface was created or destroyed (iface, index) -- what
  OpenBSD announces with RTM_IFANNOUNCE.

Only events with a `text` are kernel log lines (`carpd-sim events`, /var/log/messages).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is not imported at run time: the executables start fast
if TYPE_CHECKING:
    from typing import Any

# syslog levels (sys/syslog.h) used by CARP_LOG
LOG_CRIT, LOG_ERR, LOG_WARNING = 2, 3, 4
LOG_INFO = 6

# sys/net/if.h LINK_STATE_*, and the names if_link_state names them by
LINK_STATE_UNKNOWN, LINK_STATE_INVALID, LINK_STATE_DOWN = 0, 1, 2
LINK_STATE_UP, LINK_STATE_FULL_DUPLEX = 4, 6
LINK_STATE_NAMES = {0: "unknown", 1: "invalid", 2: "down", 4: "up", 6: "full-duplex"}

CARP, DEMOTE, LINK, ARRIVAL, DEPARTURE = "carp", "demote", "link", "arrival", "departure"


@dataclass(frozen=True)
class SimEvent:
    """One thing that happened in a node's kernel at simulated time `time` (see the kinds above).

    Every carp state change is an event, logged or not (`logged`: at the node's
    net.inet.carp.log). `text` is what follows `/bsd: ` in /var/log/messages, e.g.
    `carp0: state transition: BACKUP -> MASTER`; empty for events that are not log lines.
    """

    seq: int
    time: float
    node: str
    level: int
    text: str
    logged: bool
    iface: str | None = None
    vhid: int | None = None
    old: str | None = None  # carp: the old state
    new: str | None = None  # carp: the new state; link: the new link state's name
    kind: str = CARP
    index: int | None = None  # link, arrival, departure: the interface index
    flags: int | None = None  # link: the interface flags (IFF_*)
    link_state: int | None = None  # link: LINK_STATE_*
    group: str | None = None  # demote: the group
    count: int | None = None  # demote: the group's new demote counter

    @property
    def is_transition(self) -> bool:
        return self.kind == CARP and self.new is not None

    @property
    def is_log(self) -> bool:
        """A kernel log line (logged or not at the node's log level)."""
        return bool(self.text)

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
            "kind": self.kind,
            "index": self.index,
            "flags": self.flags,
            "link_state": self.link_state,
            "group": self.group,
            "count": self.count,
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
