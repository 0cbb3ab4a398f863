"""`carpd-sim`: drive the simulated host by hand; and `run_tool`, what the executables run.

    carpd-sim --state FILE create [--topology handbook|single|multivhid|scale:N] [--timescale X]
    carpd-sim --state FILE link NODE IF up|down
    carpd-sim --state FILE sysctl NODE NAME=VALUE
    carpd-sim --state FILE show NODE
    carpd-sim --state FILE events [--all] [--json]
    carpd-sim --state FILE tick [--interval SEC] [--for SEC] [--json]
    carpd-sim --state FILE install-bin NODE DIR
    carpd-sim --state FILE fault NODE [--hang SEC] [--garbage on|off] [--unprivileged on|off]
                                      [--truncate CHARS|off]
    carpd-sim --state FILE run NODE ifconfig|sysctl [ARGS...]
    carpd-sim --state FILE pf NODE [--enabled on|off] [--states N] [--add-rule R] [--remove-rule R]
    carpd-sim --state FILE relayd NODE [--running on|off] [--host NAME up|down ...]

The executables import this module on every run: on the read path it imports only os, sys
and time (no json, no fcntl, no trio, no argparse until `main`); `python -X importtime` shows
it.
"""

from __future__ import annotations

import os
import sys
import time

from . import carrier
from .printed import Printed, Result, ifconfig_read, ifconfig_writes
from .store import Store
from .sysctl_cmd import Sysctl, sysctl_writes

TYPE_CHECKING = False  # keep the executables' imports small: see printed.py
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .events import SimEvent

GARBAGE = "%%% carpd-sim: garbage instead of the output of {tool} (fault injected) %%%\n"


def run_tool(tool: str, state: str, node: str, argv: Sequence[str]) -> int:
    """One run of the simulated `ifconfig` or `sysctl` of `node`: print, return the exit code.

    A read-only run answers from what the state file keeps printed; a run that may change
    something loads the whole world, runs the kernel and writes it back under the lock.
    """
    store = Store(state)
    try:
        printed = store.read_printed(node)
    except KeyError:
        sys.stderr.write(f"{tool}: carpd-sim: no node {node!r} in {state}\n")
        return 1
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{tool}: carpd-sim: {exc}\n")
        return 1
    if printed["hang"] > 0:
        time.sleep(printed["hang"])  # a stuck ioctl: it answers late, with what is true then
        printed = store.read_printed(node)
    if printed.get("due") is not None and time.time() >= printed["due"]:
        _advance(store)  # a timer ran out since the last write: bring the world to now
        printed = store.read_printed(node)
    if tool == "ifconfig" and "carrier_from" in printed:  # bound to a real namespace
        changes = carrier.moved(printed)
        if changes:
            carrier.follow(store, node, changes)
            printed = store.read_printed(node)
    writes = ifconfig_writes(argv) if tool == "ifconfig" else sysctl_writes(argv)
    if writes:
        result = _write(tool, store, node, argv)
    elif tool == "ifconfig":
        result = ifconfig_read(Printed(printed), argv)
    else:
        values = printed["sysctl"]
        result = Sysctl(values, unprivileged=True, listing=printed["sysctl_text"]).main(argv)
    if printed["garbage"] and result.code == 0 and not writes:
        result = Result(0, GARBAGE.format(tool=tool), result.stderr)
    cut = printed.get("truncate")
    if cut is not None and tool == "ifconfig" and not argv and result.code == 0:
        result = Result(0, result.stdout[:cut], result.stderr)  # cut short, exit 0
    _emit(result)
    return result.code


def _write(tool: str, store: Store, node: str, argv: Sequence[str]) -> Result:
    # The write path loads the kernel; the read path above never imports it.
    from .ifconfig_cmd import run_ifconfig  # noqa: PLC0415
    from .kernel import transaction  # noqa: PLC0415
    from .sysctl_cmd import run_sysctl  # noqa: PLC0415

    program = run_ifconfig if tool == "ifconfig" else run_sysctl
    wall = time.time()
    with transaction(store, wall) as kernel:
        result = program(kernel, node, argv)
    store.log_command(wall, node, [tool, *argv], result.code)
    return result


def _advance(store: Store) -> None:
    from .kernel import transaction  # noqa: PLC0415 (not on the read path)

    with transaction(store, time.time()):
        pass


def _emit(result: Result) -> None:
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.stderr.flush()


def _print_event(event: SimEvent, hosts: dict[str, str], *, every: bool, as_json: bool) -> None:
    """A kernel log line as syslogd writes it (with `every`, also those not logged); or, with
    `as_json`, every event as one JSON object."""
    if as_json:
        import json  # noqa: PLC0415 (not on the executables' path)

        print(json.dumps(event.to_json(), separators=(",", ":")))
        return
    if not event.text:
        return
    line = event.syslog_line(hosts.get(event.node, event.node))
    if event.logged:
        print(line)
    elif every:
        print(f"{line}  [not logged: net.inet.carp.log < {event.level}]")


def _onoff(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError(f"expected on or off, not {text!r}")
    return text == "on"


def _chars(text: str) -> int:
    """--truncate: a count of characters, or off (-1, what set_fault takes for off)."""
    if text == "off":
        return -1
    value = int(text)
    if value < 0:
        raise ValueError(f"expected a count of characters or off, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    # Not needed by the executables, which import this module on every run.
    import argparse  # noqa: PLC0415

    from .render import render_ifconfig  # noqa: PLC0415
    from .view import interfaces  # noqa: PLC0415
    from .world import World  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="carpd-sim", description="The simulated OpenBSD carp(4)/pfsync(4) pair."
    )
    parser.add_argument(
        "--state",
        default=os.environ.get("CARPD_SIM_STATE"),
        help="the state file (default: $CARPD_SIM_STATE)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create", help="write a new world")
    p.add_argument("--topology", default="handbook", help="handbook, single, multivhid, scale:N")
    p.add_argument(
        "--timescale",
        type=float,
        help="simulated seconds per real second (default: $CARPD_SIM_TIMESCALE or 1)",
    )
    p = sub.add_parser("link", help="carrier on/off on a physical interface")
    p.add_argument("node")
    p.add_argument("ifname")
    p.add_argument("updown", choices=("up", "down"))
    p = sub.add_parser("sysctl", help="set net.inet.carp.NAME as root")
    p.add_argument("node")
    p.add_argument("assignment", metavar="NAME=VALUE")
    p = sub.add_parser("show", help="print what ifconfig prints on a node")
    p.add_argument("node")
    p = sub.add_parser("events", help="print the kernel log lines")
    p.add_argument("--all", action="store_true", help="also the lines net.inet.carp.log hides")
    p.add_argument("--json", action="store_true", help="every event (also link events), JSON")
    p = sub.add_parser("tick", help="advance the world continuously, print what happens")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between looks")
    p.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="every event as JSON, one a line")
    p = sub.add_parser("install-bin", help="write ifconfig and sysctl for a node")
    p.add_argument("node")
    p.add_argument("directory")
    p = sub.add_parser("fault", help="make a node's executables hang, babble or lose root")
    p.add_argument("node")
    p.add_argument("--hang", type=float, help="seconds to sleep before answering (0: off)")
    p.add_argument("--garbage", type=_onoff, help="on|off: print unparsable output")
    p.add_argument("--unprivileged", type=_onoff, help="on|off: set commands fail with EPERM")
    p.add_argument(
        "--truncate",
        type=_chars,
        help="CHARS|off: the full `ifconfig` listing stops after CHARS characters, exit 0",
    )
    p = sub.add_parser("run", help="run a node's ifconfig or sysctl")
    p.add_argument("node")
    p.add_argument("tool", choices=("ifconfig", "sysctl"))
    p.add_argument("args", nargs=argparse.REMAINDER)
    raw = list(sys.argv[1:] if argv is None else argv)
    at = next((i for i, a in enumerate(raw) if a in ("pf", "relayd")), None)
    if at is not None:  # pf and relayd of the simulated nodes: services.py
        from .services import cli  # noqa: PLC0415

        head = parser.parse_args([*raw[:at], "events"])  # --state only
        if not head.state:
            parser.error("--state FILE (or CARPD_SIM_STATE) is required")
        return cli(raw[at:], head.state)
    args = parser.parse_args(argv)
    if not args.state:
        parser.error("--state FILE (or CARPD_SIM_STATE) is required")

    try:
        if args.command == "create":
            world = World.create(args.state, args.topology, timescale=args.timescale)
            print(f"{world.path}: {', '.join(world.nodes())} ({args.topology})")
            return 0
        if args.command == "run":
            return run_tool(args.tool, args.state, args.node, args.args)
        world = World(args.state)
        if args.command == "link":
            world.set_link(args.node, args.ifname, args.updown == "up")
        elif args.command == "sysctl":
            name, sep, value = args.assignment.partition("=")
            if not sep:
                parser.error("sysctl: NAME=VALUE")
            before = world.sysctl_set(args.node, name, int(value))
            print(f"net.inet.carp.{name.removeprefix('net.inet.carp.')}: {before} -> {int(value)}")
        elif args.command == "show":
            node = world.read().node(args.node)
            sys.stdout.write(render_ifconfig(interfaces(node)))
        elif args.command == "events":
            hosts = {n.name: n.hostname for n in world.read().nodes.values()}
            for event in world.events():
                _print_event(event, hosts, every=args.all, as_json=args.json)
        elif args.command == "tick":
            # Every event logged from now on (by the timers run here, or by commands), in order.
            offset = world.events_from(0)[1]
            hosts = {n.name: n.hostname for n in world.read().nodes.values()}
            start = time.monotonic()
            try:
                while args.duration is None or time.monotonic() - start < args.duration:
                    world.advance()
                    events, offset = world.events_from(offset)
                    for event in events:
                        _print_event(event, hosts, every=True, as_json=args.json)
                    sys.stdout.flush()
                    time.sleep(max(args.interval, 0.001))
            except KeyboardInterrupt:
                return 0
        elif args.command == "install-bin":
            for path in world.install_bin(args.directory, args.node):
                print(path)
        elif args.command == "fault":
            world.set_fault(
                args.node,
                hang=args.hang,
                garbage=args.garbage,
                unprivileged=args.unprivileged,
                truncate=args.truncate,
            )
    except (OSError, KeyError, ValueError) as exc:
        print(f"carpd-sim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
