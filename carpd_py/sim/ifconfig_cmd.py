"""`ifconfig` of the simulated host: sbin/ifconfig/ifconfig.c r1.476 main() and the commands
carpd-py and its tests need, against the simulated kernel.

Messages are ifconfig's own: err(3) prints `ifconfig: MSG: strerror`, errx(3) `ifconfig: MSG`,
and a missing interface is `NAME: no such interface` without the program name. As on OpenBSD,
a set command on a missing interface whose name a cloner knows creates it first (getinfo()
with create=1): `ifconfig carp9 advskew 240` makes an empty carp9 and exits 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import errors
from .errors import Errno, Exit
from .kernel import CarpReq, Kernel, PfsyncReq
from .printed import (
    USAGE,
    Printed,
    Result,
    ifconfig_read,
    ifconfig_writes,
    parse_options,
    printed_node,
    strtonum,
)
from .printed import Exit as ReadExit
from .state import CARP_BAL_MODES, CARP_MAXNODES, IFNAMSIZ, Address, Iface, Node

PROG = "ifconfig"
CARP_KEY_LEN = 20
CARP_STATES = ("INIT", "BACKUP", "MASTER")


def _scan_uint(text: str) -> tuple[int | None, str]:
    """sscanf %u: leading blanks, optional sign, digits (a minus wraps as in C); the rest."""
    stripped = text.lstrip(" \t\n\v\f\r")
    sign = stripped[:1] if stripped[:1] in ("+", "-") else ""
    digits = ""
    for c in stripped[len(sign) :]:
        if not c.isdigit():
            break
        digits += c
    if not digits:
        return None, text
    rest = stripped[len(sign) + len(digits) :]
    value = int(digits) & 0xFFFFFFFF
    return ((-value) & 0xFFFFFFFF if sign == "-" else value), rest


def _uint(text: str) -> int | None:
    return _scan_uint(text)[0]


def _ipv4(text: str) -> str | None:
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return text
    return None


class Ifconfig:
    """One run of ifconfig on one node."""

    def __init__(self, kernel: Kernel, node: Node) -> None:
        self.kernel = kernel
        self.node = node
        self.out: list[str] = []
        self.err: list[str] = []
        self.ifname = ""
        self.newaddr: tuple[str, int] | None = None  # address and prefix length to add
        self.netmask: int | None = None
        self.doalias = 0  # 0: replace the first address, 1: alias, -1: delete

    # --- err(3) and friends --------------------------------------------------------------

    def errx(self, msg: str) -> Exit:
        return Exit(1, "".join(self.err) + f"{PROG}: {msg}\n", "".join(self.out))

    def err_(self, msg: str, exc: Errno) -> Exit:
        return self.errx(f"{msg}: {exc.text}")

    def warn(self, msg: str, exc: Errno) -> None:
        self.err.append(f"{PROG}: {msg}: {exc.text}\n")

    def usage(self) -> Exit:
        return Exit(1, "".join(self.err) + USAGE, "".join(self.out))

    # --- main() --------------------------------------------------------------------------

    def main(self, args: Sequence[str]) -> Result:
        if not ifconfig_writes(args):
            return ifconfig_read(Printed(printed_node(self.node)), args)
        try:
            self._main(list(args))
        except Exit as e:
            return Result(e.code, e.stdout, e.stderr)
        return Result(0, "".join(self.out), "".join(self.err))

    def _main(self, argv: list[str]) -> None:
        """main() of ifconfig.c for a command line that sets something."""
        try:
            self.ifname, _, gflag, _, argv = parse_options(argv)
        except ReadExit as e:
            raise Exit(e.result.code, e.result.stderr) from None
        if gflag:
            self.setgroupattribs(self.ifname, argv)
            return
        if argv and argv[0] == "create":
            self.clone_create()
            argv = argv[1:]
            if not argv:
                return
        self.getinfo(create=bool(argv) and argv[0] != "destroy")
        while argv:
            word = argv[0]
            cmd = COMMANDS.get(word)
            if cmd is None:
                self.setifaddr(word)
                argv = argv[1:]
                continue
            nextarg, func = cmd
            if nextarg:
                if len(argv) < 2:
                    raise self.errx(f"'{word}' requires argument")
                func(self, argv[1])
                argv = argv[2:]
            else:
                func(self, word)
                argv = argv[1:]
        self.process_address()

    def getinfo(self, *, create: bool) -> Iface | None:
        if not self.ifname or not self.ifname[-1].isdigit():
            return None  # groups are ignored here
        iface = self.node.get(self.ifname)
        if iface is None and create:
            try:
                iface = self.kernel.siocifcreate(self.node, self.ifname)
            except Errno:
                return None  # getinfo() fails silently; the next ioctl will complain
        return iface

    # --- groups --------------------------------------------------------------------------

    def setgroupattribs(self, group: str, argv: list[str]) -> None:
        neg = 1
        if len(argv) > 1:
            neg, errstr = strtonum(argv[1], 0, 128)
            if errstr:
                raise self.errx(f"{group}: invalid carp demotion: {errstr}")
        word = argv[0]
        if word.startswith("-"):
            neg = -neg
            word = word[1:]
        if word != "carpdemote":
            raise self.usage()
        try:
            self.kernel.siocsifgattr(self.node, group, neg)
        except Errno as e:
            raise self.err_(f"{group}: SIOCSIFGATTR", e) from None

    # --- cloning -------------------------------------------------------------------------

    def clone_create(self) -> None:
        try:
            self.kernel.siocifcreate(self.node, self.ifname)
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCIFCREATE", e) from None

    def clone_destroy(self, _word: str) -> None:
        try:
            self.kernel.siocifdestroy(self.node, self.ifname)
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCIFDESTROY", e) from None

    # --- generic interface commands ------------------------------------------------------

    def _iface(self, ioctl: str) -> Iface:
        try:
            return self.kernel.ifunit(self.node, self.ifname)
        except Errno as e:
            raise self.err_(f"{self.ifname}: {ioctl}", e) from None

    def setifflags(self, word: str) -> None:
        iface = self._iface("SIOCGIFFLAGS")
        try:
            self.kernel.siocsifflags(self.node, iface, word == "up")
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCSIFFLAGS", e) from None

    def setifdesc(self, text: str) -> None:
        try:
            iface = self.kernel.ifunit(self.node, self.ifname)
            self.kernel.siocsifdescr(self.node, iface, text)
        except Errno as e:
            self.warn("SIOCSIFDESCR", e)  # warn(3), not err(3): ifconfig goes on

    def unsetifdesc(self, _word: str) -> None:
        self.setifdesc("")

    def setifgroup(self, group: str) -> None:
        if not group:
            raise self.errx("setifgroup: group name empty")
        if len(group.encode()) >= IFNAMSIZ:
            raise self.errx("setifgroup: group name too long")
        if group[-1].isdigit():
            raise self.errx("setifgroup: group names may not end in a digit")
        try:
            self.kernel.siocaifgroup(self.node, self.ifname, group)
        except Errno as e:
            if e.text != errors.EEXIST:  # setifgroup(): a group it already has is no error
                raise self.err_(f"{group}: SIOCAIFGROUP", e) from None

    def unsetifgroup(self, group: str) -> None:
        if len(group.encode()) >= IFNAMSIZ:
            raise self.errx("unsetifgroup: group name too long")
        try:
            self.kernel.siocdifgroup(self.node, self.ifname, group)
        except Errno as e:
            raise self.err_(f"{group}: SIOCDIFGROUP", e) from None

    # --- addresses -----------------------------------------------------------------------

    def setifaddr(self, word: str) -> None:
        addr, _, prefix = word.partition("/")
        if _ipv4(addr) is None:
            raise self.errx(f"{word}: bad value")
        plen = -1
        if prefix:
            plen, errstr = strtonum(prefix, 0, 32)
            if errstr:
                raise self.errx(f"prefix {prefix}: {errstr}")
        self.newaddr = (addr, plen)

    def setifnetmask(self, mask: str) -> None:
        if mask.lower().startswith("0x"):
            try:
                value = int(mask, 16)
            except ValueError:
                raise self.errx(f"{mask}: bad value") from None
        elif _ipv4(mask) is not None:
            a, b, c, d = (int(p) for p in mask.split("."))
            value = (a << 24) | (b << 16) | (c << 8) | d
        else:
            raise self.errx(f"{mask}: bad value")
        self.netmask = bin(value & 0xFFFFFFFF).count("1")

    def notealias(self, word: str) -> None:
        self.doalias = 1 if word == "alias" else -1

    def process_address(self) -> None:
        """The end of main(): SIOCDIFADDR if clearaddr, then SIOCAIFADDR if newaddr."""
        if self.newaddr is None and self.doalias >= 0:
            return
        try:
            iface = self.kernel.ifunit(self.node, self.ifname)
        except Errno as e:
            raise self.err_("SIOCDIFADDR", e) from None
        if self.doalias <= 0:  # clearaddr: the named address, or the first one
            gone = self.newaddr[0] if self.newaddr is not None and self.doalias < 0 else None
            try:
                self.kernel.siocdifaddr(self.node, iface, gone)
            except Errno as e:
                if not (e.text == errors.EADDRNOTAVAIL and self.doalias >= 0):
                    raise self.err_("SIOCDIFADDR", e) from None
        if self.newaddr is None or self.doalias < 0:
            return
        addr, plen = self.newaddr
        if plen < 0:
            plen = self.netmask if self.netmask is not None else _classful(addr)
        try:
            self.kernel.siocaifaddr(self.node, iface, Address(addr, plen))
        except Errno as e:
            raise self.err_("SIOCAIFADDR", e) from None

    # --- carp(4) -------------------------------------------------------------------------

    def _getvh(self) -> tuple[Iface, CarpReq]:
        try:
            iface = self.kernel.ifunit(self.node, self.ifname)
            return iface, self.kernel.siocgvh(self.node, iface)
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCGVH", e) from None

    def _setvh(self, iface: Iface, req: CarpReq) -> None:
        try:
            self.kernel.siocsvh(self.node, iface, req)
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCSVH", e) from None

    def setcarp_advskew(self, val: str) -> None:
        advskew, errstr = strtonum(val, 0, 254)
        if errstr:
            raise self.errx(f"advskew {val}: {errstr}")
        iface, req = self._getvh()
        req.advskews[0] = advskew
        self._setvh(iface, req)

    def setcarp_advbase(self, val: str) -> None:
        advbase, errstr = strtonum(val, 0, 254)
        if errstr:
            raise self.errx(f"advbase {val}: {errstr}")
        iface, req = self._getvh()
        req.advbase = advbase
        self._setvh(iface, req)

    def setcarp_vhid(self, val: str) -> None:
        vhid, errstr = strtonum(val, 1, 255)
        if errstr:
            raise self.errx(f"vhid {val}: {errstr}")
        iface, req = self._getvh()
        req.vhids = [vhid]
        self._setvh(iface, req)

    def setcarp_nodes(self, val: str) -> None:
        iface, req = self._getvh()
        vhids: list[int] = []
        skews: list[int] = []
        for i, part in enumerate(p for p in val.split(",") if p):
            if i >= CARP_MAXNODES:
                raise self.errx("too many carp nodes")
            # sscanf(str, "%u:%u") == 2: the ':' must follow the vhid's digits at once
            vhid, rest = _scan_uint(part)
            skew = _uint(rest[1:]) if rest[:1] == ":" else None
            if vhid is None or skew is None:
                raise self.errx(f"non parsable arg: {part}")
            if vhid > 255:
                raise self.errx(f"vhid {vhid}: value too large")
            if skew >= 255:
                raise self.errx(f"advskew {skew}: value too large")
            vhids.append(vhid)
            skews.append(skew)
        if 0 in vhids:  # the kernel reads the list up to the first zero
            cut = vhids.index(0)
            vhids, skews = vhids[:cut], skews[:cut]
        req.vhids = vhids
        req.advskews = skews
        self._setvh(iface, req)

    def setcarp_balancing(self, val: str) -> None:
        iface, req = self._getvh()
        modes = [m.lower() for m in CARP_BAL_MODES]
        if val.lower() not in modes:
            raise self.errx(f"balancing {val}: unknown mode")
        req.balancing = modes.index(val.lower())
        self._setvh(iface, req)

    def setcarppeer(self, val: str) -> None:
        iface, req = self._getvh()
        if _ipv4(val) is None:
            raise self.errx("error in parsing address string: no address associated with name")
        req.peer = val
        self._setvh(iface, req)

    def unsetcarppeer(self, _word: str) -> None:
        iface, req = self._getvh()
        req.peer = None
        self._setvh(iface, req)

    def setcarp_passwd(self, val: str) -> None:
        iface, req = self._getvh()
        req.key = val.encode()[: CARP_KEY_LEN - 1].decode(errors="ignore")
        self._setvh(iface, req)

    def setcarp_state(self, val: str) -> None:
        iface, req = self._getvh()
        for state in CARP_STATES:
            if val.lower() == state.lower():
                req.state = state
                break
        self._setvh(iface, req)

    def setcarpdev(self, val: str) -> None:
        iface, req = self._getvh()
        req.carpdev = val
        self._setvh(iface, req)

    # --- pfsync(4) -----------------------------------------------------------------------

    def _getpfsync(self) -> tuple[Iface, PfsyncReq]:
        try:
            iface = self.kernel.ifunit(self.node, self.ifname)
            return iface, self.kernel.siocgetpfsync(iface)
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCGETPFSYNC", e) from None

    def _setpfsync(self, iface: Iface, req: PfsyncReq) -> None:
        try:
            self.kernel.siocsetpfsync(self.node, iface, req)
        except Errno as e:
            raise self.err_(f"{self.ifname}: SIOCSETPFSYNC", e) from None

    def setpfsync_syncdev(self, val: str) -> None:
        iface, req = self._getpfsync()
        req.syncdev = val
        self._setpfsync(iface, req)

    def unsetpfsync_syncdev(self, _word: str) -> None:
        iface, req = self._getpfsync()
        req.syncdev = ""
        self._setpfsync(iface, req)

    def setpfsync_syncpeer(self, val: str) -> None:
        iface, req = self._getpfsync()
        if _ipv4(val) is None:
            raise self.errx("error in parsing address string: no address associated with name")
        req.syncpeer = val
        self._setpfsync(iface, req)

    def unsetpfsync_syncpeer(self, _word: str) -> None:
        iface, req = self._getpfsync()
        req.syncpeer = None
        self._setpfsync(iface, req)

    def setpfsync_maxupd(self, val: str) -> None:
        maxupd, errstr = strtonum(val, 0, 255)
        if errstr:
            raise self.errx(f"maxupd {val}: {errstr}")
        iface, req = self._getpfsync()
        req.maxupd = maxupd
        self._setpfsync(iface, req)

    def setpfsync_defer(self, word: str) -> None:
        iface, req = self._getpfsync()
        req.defer = word == "defer"
        self._setpfsync(iface, req)


def _classful(addr: str) -> int:
    first = int(addr.split(".", 1)[0])
    return 8 if first < 128 else 16 if first < 192 else 24


_Cmd = Callable[[Ifconfig, str], None]

# name: (takes the next argument, function); the subset of ifconfig.c's cmds[] modelled here
COMMANDS: dict[str, tuple[bool, _Cmd]] = {
    "up": (False, Ifconfig.setifflags),
    "down": (False, Ifconfig.setifflags),
    "alias": (False, Ifconfig.notealias),
    "-alias": (False, Ifconfig.notealias),
    "delete": (False, Ifconfig.notealias),
    "netmask": (True, Ifconfig.setifnetmask),
    "group": (True, Ifconfig.setifgroup),
    "-group": (True, Ifconfig.unsetifgroup),
    "description": (True, Ifconfig.setifdesc),
    "descr": (True, Ifconfig.setifdesc),
    "-description": (False, Ifconfig.unsetifdesc),
    "-descr": (False, Ifconfig.unsetifdesc),
    "advbase": (True, Ifconfig.setcarp_advbase),
    "advskew": (True, Ifconfig.setcarp_advskew),
    "balancing": (True, Ifconfig.setcarp_balancing),
    "carpdev": (True, Ifconfig.setcarpdev),
    "carpnodes": (True, Ifconfig.setcarp_nodes),
    "carppeer": (True, Ifconfig.setcarppeer),
    "-carppeer": (False, Ifconfig.unsetcarppeer),
    "pass": (True, Ifconfig.setcarp_passwd),
    "state": (True, Ifconfig.setcarp_state),
    "vhid": (True, Ifconfig.setcarp_vhid),
    "syncdev": (True, Ifconfig.setpfsync_syncdev),
    "-syncdev": (False, Ifconfig.unsetpfsync_syncdev),
    "syncif": (True, Ifconfig.setpfsync_syncdev),
    "-syncif": (False, Ifconfig.unsetpfsync_syncdev),
    "syncpeer": (True, Ifconfig.setpfsync_syncpeer),
    "-syncpeer": (False, Ifconfig.unsetpfsync_syncpeer),
    "maxupd": (True, Ifconfig.setpfsync_maxupd),
    "defer": (False, Ifconfig.setpfsync_defer),
    "-defer": (False, Ifconfig.setpfsync_defer),
    "destroy": (False, Ifconfig.clone_destroy),
}


def run_ifconfig(kernel: Kernel, node: str, args: Sequence[str]) -> Result:
    """Run `ifconfig ARGS` on one node of the kernel's world; settle if it may have changed."""
    result = Ifconfig(kernel, kernel.world.node(node)).main(args)
    if ifconfig_writes(args):
        kernel.settle()
    return result
