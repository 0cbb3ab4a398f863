"""Telling a cut-short read from a change on the host. Pure.

One `ifconfig` run can come back cut short with exit 0 (a pipe closed early, a process killed
half-way). ifconfig.c ends every line it prints with a newline, so parse.py refuses output whose
last line has none. What it cannot see is a cut that falls exactly at the end of a line: the
interfaces after it are missing, and the last one shown may have lost its last lines (em2
without its `status:` line reads like a syncdev without link).

So an interface that the previous read showed and this one does not, or shows with less (the
last block only: a cut shortens nothing else), is re-read by name (`ifconfig NAME`, in
host.py) before it counts; on the first read, with nothing to compare with, so is whatever
the SYNC check would take for a loss by its absence. A read that lost more than
`CONFIRM_MAX` interfaces at once is a failed read, unless the read before it lost the same.
A value that is read (`status: no carrier`, flags without RUNNING) counts at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .model import HostView, Interface

CONFIRM_MAX = 8  # interfaces re-read by name in one round; more is a failed read


def shows_less(before: Interface, now: Interface) -> bool:
    """`now` lacks a line that `before` had: what a cut at the end of a line does."""
    if before.carp is not None and (
        now.carp is None or len(now.carp.nodes) < len(before.carp.nodes)
    ):
        return True
    pairs = (
        (before.lladdr, now.lladdr),
        (before.description, now.description),
        (before.index, now.index),
        (before.llprio, now.llprio),
        (before.pfsync, now.pfsync),
        (before.media, now.media),
        (before.status, now.status),
    )
    if any(b is not None and n is None for b, n in pairs):
        return True
    # Addresses are left out: plain `ifconfig` prints fewer of them than `ifconfig NAME`
    # may, and no decision rests on them.
    return bool(before.groups and not now.groups)


def _first_read(view: HostView, sync_interface: str | None) -> list[str]:
    if sync_interface is None:
        return []
    ps = view.get(sync_interface)
    if ps is None or ps.pfsync is None:
        return [sync_interface]
    dev = view.get(ps.pfsync.syncdev)
    if dev is None or dev.status is None:
        return [ps.pfsync.syncdev]
    return []


def doubtful(
    previous: HostView | None,
    view: HostView,
    sync_interface: str | None,
    done: Iterable[str] = (),
) -> tuple[str, ...]:
    """The interfaces to re-read by name before this read counts, in the previous order."""
    skip = set(done)
    if previous is None:
        return tuple(n for n in _first_read(view, sync_interface) if n not in skip)
    present = view.names
    names = [i.name for i in previous.interfaces if i.name not in present]
    if view.interfaces:
        last = view.interfaces[-1]
        before = previous.get(last.name)
        if before is not None and shows_less(before, last):
            names.append(last.name)
    return tuple(n for n in names if n not in skip)


def merge(view: HostView, found: Mapping[str, Interface | None]) -> HostView:
    """`view` with what `ifconfig NAME` showed: replaced, added, or (None) gone."""
    interfaces = [found.get(i.name, i) for i in view.interfaces]
    kept = [i for i in interfaces if i is not None]
    present = {i.name for i in kept}
    kept.extend(i for n, i in found.items() if i is not None and n not in present)
    return HostView(tuple(kept), view.group_demote, view.sysctl)
