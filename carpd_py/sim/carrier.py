"""Link state from real interfaces: a simulated node that follows a network namespace's carrier.

In the network lab (`lab.py`) each node's daemon runs inside its own namespace, where em0, em1
and em2 are real veth interfaces. A node whose `carrier_from` is set (`World.set_carrier_source`,
normally to /sys/class/net) takes the carrier of each of its physical interfaces from that
directory: on every run of its `ifconfig`, the executable reads `DIR/NAME/carrier` for each one
and, only when a value differs from the state file, changes the link through the write path (the
kernel's link hooks and the election run, what it prints is rendered again). A run where
nothing moved stays on the read-only path: a few small reads more, no lock held for writing.

`DIR/NAME/carrier` says `1` or `0`; reading it fails with EINVAL while the interface is
administratively down (`ip link set em2 down`), which is read as no carrier: the cable is
pulled, as far as the simulated host can tell. An interface missing from DIR (the executable
runs outside the namespace, say) keeps the state file's value. Only the node's own `ifconfig`
looks: `World.view` in another process or namespace reads the state file as it is.

Imports nothing heavy on the read path (see printed.py); the write path loads the kernel.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is not imported at run time: the executables start fast
if TYPE_CHECKING:
    from typing import Any

    from .store import Store

SYSFS = "/sys/class/net"


def real_carrier(directory: str, name: str) -> bool | None:
    """The carrier of `name` under `directory`; None when there is no such interface there."""
    try:
        with open(f"{directory}/{name}/carrier", "rb") as f:
            return f.read().strip() == b"1"
    except FileNotFoundError:
        return None
    except OSError:  # EINVAL: administratively down, so no link
        return False


def moved(printed: dict[str, Any]) -> dict[str, bool]:
    """Interfaces whose real carrier differs from the stored one, with the real value."""
    directory = printed.get("carrier_from")
    if not directory:
        return {}
    out: dict[str, bool] = {}
    for name, stored in printed["carriers"].items():
        real = real_carrier(directory, name)
        if real is not None and real != stored:
            out[name] = real
    return out


def follow(store: Store, node: str, changes: dict[str, bool]) -> None:
    """Set the carriers of `node` as given, through the kernel (link hooks, elections)."""
    from .kernel import transaction  # noqa: PLC0415 (the write path only)
    from .state import ETHER  # noqa: PLC0415

    with transaction(store, time.time()) as kernel:
        n = kernel.world.node(node)
        for name, up in changes.items():
            iface = n.get(name)
            if iface is not None and iface.kind == ETHER:
                iface.carrier = up
        kernel.settle()
