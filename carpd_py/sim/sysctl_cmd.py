"""`sysctl` of the simulated host: sbin/sysctl/sysctl.c main() and parse() for net.inet.carp.

Only the net.inet.carp subtree exists here (allow, preempt, log; stats is a struct that sysctl
refers to netstat for). As on OpenBSD, sysctl warns on stderr about a bad name or value and
still exits 0; only a usage error exits 1.
"""

from __future__ import annotations

from .printed import Result, strtonum

TYPE_CHECKING = False  # the read path imports no more than it needs: see printed.py
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .kernel import Kernel

PROG = "sysctl"
USAGE = "usage: sysctl [-Aanq] [-f file] [name[=value] ...]\n"
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# The levels of the tree this simulation knows, with the names that exist at each level.
_TOP = ("kern", "vm", "fs", "net", "debug", "hw", "machdep", "user", "ddb", "vfs")
_CARP_NAMES = ("allow", "preempt", "log", "stats")  # CARPCTL_NAMES


def sysctl_writes(args: Sequence[str]) -> bool:
    return any("=" in a and not a.startswith("-") for a in args)


class Sysctl:
    """One run of sysctl over one node's net.inet.carp values (changed in place)."""

    def __init__(self, values: dict[str, int], *, unprivileged: bool, listing: str) -> None:
        self.values = values
        self.unprivileged = unprivileged
        self.listing = listing  # render_sysctl() of the values: `sysctl net.inet.carp`
        self.out: list[str] = []
        self.err: list[str] = []
        self.nflag = self.qflag = False
        self.changed = False

    def warnx(self, msg: str) -> None:
        self.err.append(f"{PROG}: {msg}\n")

    def main(self, args: Sequence[str]) -> Result:
        argv = list(args)
        listall = False
        while argv and argv[0].startswith("-") and argv[0] != "-":
            opt = argv.pop(0)
            if opt == "--":
                break
            for c in opt[1:]:
                if c in "Aa":
                    listall = True
                elif c == "n":
                    self.nflag = True
                elif c == "q":
                    self.qflag = True
                elif c == "w":
                    pass  # no longer needed; var=value implies write
                else:
                    return Result(1, "", f"{PROG}: unknown option -- {c}\n{USAGE}")
        if not argv or listall:
            self.listall("net.inet.carp")
        else:
            for arg in argv:
                self.parse(arg, explicit=True)
        return Result(0, "".join(self.out), "".join(self.err))

    def listall(self, prefix: str) -> None:
        if not self.nflag:
            self.out.append(self.listing)
            return
        for name in _CARP_NAMES:
            self.parse(f"{prefix}.{name}", explicit=False)

    def parse(self, string: str, *, explicit: bool) -> None:
        name, eq, newval = string.partition("=")
        newval = newval.lstrip(" \t\n\v\f\r") if eq else ""
        parts = name.split(".")
        if parts[0] not in _TOP:
            self.warnx(f"top level name {parts[0]} in {name} is invalid")
            return
        if len(parts) == 1:
            if name == "net":
                self.listall("net.inet.carp")  # the only subtree the simulation has
            return
        if parts[0] != "net" or parts[1] != "inet":
            self.warnx(f"second level name {parts[1]} in {name} is invalid")
            return
        if len(parts) == 2:
            self.listall("net.inet.carp")
            return
        if parts[2] != "carp":
            self.warnx(f"third level name {parts[2]} in {name} is invalid")
            return
        if len(parts) == 3:
            self.listall(name)
            return
        leaf = parts[3]
        if leaf not in _CARP_NAMES:
            self.warnx(f"fourth level name {leaf} in {name} is invalid")
            return
        if len(parts) > 4:
            self.warnx(f"name {'.'.join(parts[4:])} in {name} is unknown")
            return
        if leaf == "stats":
            if explicit:
                self.warnx(f"use netstat to view {name} information")
            return
        old = self.values[leaf]
        if not newval:
            self.out.append(f"{old}\n" if self.nflag else f"{name}={old}\n")
            return
        value, errstr = strtonum(newval, INT_MIN, INT_MAX)
        if errstr:
            self.warnx(f"{name}: value is {errstr}: {newval}")
            return
        if self.unprivileged:
            self.err.append(f"{PROG}: {name}: Operation not permitted\n")  # warn(3)
            return
        self.values[leaf] = value
        self.changed = True
        if not self.qflag:
            self.out.append(f"{value}\n" if self.nflag else f"{name}: {old} -> {value}\n")


def run_sysctl(kernel: Kernel, node: str, args: Sequence[str]) -> Result:
    """Run `sysctl ARGS` on one node of the kernel's world; settle if a value changed."""
    # The write path only: the read path of the executables must not import the model.
    from .render import render_sysctl  # noqa: PLC0415
    from .view import sysctl_values  # noqa: PLC0415

    n = kernel.world.node(node)
    listing = render_sysctl(sysctl_values(n))
    program = Sysctl(n.sysctl, unprivileged=n.unprivileged, listing=listing)
    result = program.main(args)
    if program.changed:
        kernel.settle()
    return result
