"""pf and relayd of the simulated nodes: `pfctl` and `relayctl` executables over a small model.

The model, per node, lives in `STATE.services` beside the world's state file (JSON, replaced
atomically under `STATE.services.lock`), created from the world on first use:

    {"A": {"pf": {"enabled": true, "since": EPOCH, "states": 120, "debug": "err",
                  "rules": ["block drop all", "pass on em0 proto carp all", ...],
                  "skip": ["lo", "pfsync0"]},
           "relayd": {"running": true,
                      "relays": [{"name": "www", "listen": "10.10.10.1", "port": 80,
                                  "table": "web_backends", "check_port": 80,
                                  "hosts": [{"name": "10.10.10.11", "up": true}, ...]}]}}}

The rules are kept in their printed form (what print_rule() writes for the loaded rule); the
executables print, byte for byte, what sbin/pfctl and usr.sbin/relayctl print (see pfparse.py
and relayparse.py for the functions each format comes from). Faults are changes to the model:
rules that differ between the nodes, a missing `pass proto pfsync`, relay hosts down, relayd
not running, pf disabled.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .printed import Result

RELAYD_SOCKET = "/var/run/relayd.sock"
PFCTL_USAGE = (
    "usage: pfctl [-deghNnPqrvz] [-a anchor] [-D macro=value] [-F modifier]\n"
    "\t[-f file] [-i interface] [-K key] [-k key] [-L statefile]\n"
    "\t[-o level] [-p device] [-S statefile] [-s modifier [-R id]]\n"
    "\t[-t table -T command [address ...]] [-V rdomain] [-x level]\n"
)
RELAYCTL_USAGE = "usage: relayctl [-s socket] command [argument ...]\n"


def services_path(state: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(state) + ".services")


def default_model(state: str | os.PathLike[str]) -> dict[str, Any]:
    """pf and relayd as the handbook sets them up on every node of the world at `state`."""
    from .world import World  # noqa: PLC0415 (the world is needed only to make the defaults)

    world = World(state)
    out: dict[str, Any] = {}
    now = int(time.time())
    for name in world.nodes():
        view = world.view(name)
        carpdevs = list(
            dict.fromkeys(i.carp.carpdev for i in view.carp if i.carp and i.carp.carpdev)
        )
        rules = ["block drop all"]
        rules += [f"pass on {dev} proto carp all" for dev in carpdevs]
        sync = next((i for i in view.interfaces if i.pfsync is not None), None)
        skip = ["lo"]
        if sync is not None and sync.pfsync is not None:
            rules.append(f"pass on {sync.pfsync.syncdev} proto pfsync all")
            skip.append(sync.name)
        rules += [
            "pass out proto tcp all flags S/SA",
            "pass out proto udp all",
            "pass out proto icmp all",
        ]
        relays = []
        lan = view.carp[-1] if view.carp else None
        if lan is not None and lan.inet:
            vip = lan.inet[0].split()[0]
            prefix = vip.rsplit(".", 1)[0]
            hosts = [{"name": f"{prefix}.{n}", "up": True} for n in (11, 12)]
            relays.append({"name": "www", "listen": vip, "port": 80, "table": "web_backends",
                           "check_port": 80, "hosts": hosts})  # fmt: skip
        out[name] = {
            "pf": {
                "enabled": True,
                "since": now,
                "states": 120,
                "debug": "err",
                "rules": rules,
                "skip": skip,
            },
            "relayd": {"running": bool(relays), "relays": relays},
        }
    return out


@contextmanager
def _locked(state: str, mode: int) -> Iterator[None]:
    fd = os.open(str(services_path(state)) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _load(state: str) -> dict[str, Any] | None:
    try:
        with open(services_path(state), encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    return data


def _save(state: str, model: dict[str, Any]) -> None:
    path = services_path(state)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(model, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_model(state: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole model (created with the defaults when absent)."""
    state = os.fspath(state)
    with _locked(state, fcntl.LOCK_SH):
        model = _load(state)
    if model is None:
        with _locked(state, fcntl.LOCK_EX):
            model = _load(state)
            if model is None:
                model = default_model(state)
                _save(state, model)
    return model


@contextmanager
def modify(state: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Change the model under the lock; written back when the block ends."""
    state = os.fspath(state)
    read_model(state)
    with _locked(state, fcntl.LOCK_EX):
        model = _load(state) or default_model(state)
        yield model
        _save(state, model)


# --- pfctl ---------------------------------------------------------------------------------


def _duration(seconds: int) -> str:
    day, seconds = divmod(max(seconds, 0), 86400)
    hrs, seconds = divmod(seconds, 3600)
    mins, secs = divmod(seconds, 60)
    return f"{day} days {hrs:02d}:{mins:02d}:{secs:02d}"


FCOUNTERS = ("searches", "inserts", "removals")
REASONS = ("match", "bad-offset", "fragment", "short", "normalize", "memory", "bad-timestamp",
           "congestion", "ip-option", "proto-cksum", "state-mismatch", "state-insert",
           "state-limit", "src-limit", "synproxy", "translate", "no-route")  # fmt: skip


def render_info(pf: dict[str, Any], now: float) -> str:
    """pfctl_parser.c print_status() without -v (no Hostid/Checksum, no loginterface)."""
    running = "Enabled" if pf["enabled"] else "Disabled"
    since = pf.get("since") or 0
    runtime = int(now) - since
    # The kernel keeps `since` in uptime seconds; 0 seconds running prints no duration.
    statline = (
        f"Status: {running} for {_duration(runtime)}" if since and runtime else f"Status: {running}"
    )
    out = [f"{statline:<44}{'Debug: ' + pf.get('debug', 'err'):>15}\n\n"]
    out.append(f"{'State Table':<27} {'Total':>14} {'Rate':>16}\n")
    out.append(f"  {'current entries':<25} {pf['states']:>14} {'':>14}\n")
    out.append(f"  {'half-open tcp':<25} {0:>14} {'':>14}\n")
    counts = {"searches": pf["states"] * 40, "inserts": pf["states"] * 2, "removals": pf["states"]}
    for name in FCOUNTERS:
        rate = f"{counts[name] / runtime:>14.1f}/s" if runtime > 0 else f"{'':>14}"
        out.append(f"  {name:<25} {counts[name]:>14} {rate}\n")
    out.append("Counters\n")
    for name in REASONS:
        value = pf["states"] * 3 if name == "match" else 0
        rate = f"{value / runtime:>14.1f}/s" if runtime > 0 else f"{'':>14}"
        out.append(f"  {name:<25} {value:>14} {rate}\n")
    return "".join(out)


def render_rules(pf: dict[str, Any], verbose: int) -> str:
    """pfctl.c pfctl_show_rules(): print_rule() one rule a line (`@N ` first with -vv), then
    with -v pfctl_print_rule_counters()'s two lines."""
    out = []
    for n, rule in enumerate(pf["rules"]):
        out.append(f"@{n} {rule}\n" if verbose >= 2 else f"{rule}\n")
        if verbose:
            out.append(f"  [ Evaluations: {0:<8}  Packets: {0:<8}  Bytes: {0:<10}  "
                       f"States: {0:<6}]\n")  # fmt: skip
            out.append(f"  [ Inserted: uid 0 pid 1 State Creations: {0:<6}]\n")
    return "".join(out)


def render_ifaces(state: str, node: str, pf: dict[str, Any], verbose: int) -> str:
    """pfctl_table.c print_iface(): every interface and group pf knows, sorted by name;
    ` (skip)` after those `set skip on` names (and the members of a skipped group), with -v."""
    from .world import World  # noqa: PLC0415

    view = World(state).view(node)
    names: dict[str, bool] = {"all": False}
    skip = set(pf.get("skip", ()))
    for iface in view.interfaces:
        skipped = iface.name in skip or bool(skip.intersection(iface.groups))
        names[iface.name] = skipped
        for group in iface.groups:
            names[group] = names.get(group, False) or group in skip
    lines = []
    for name in sorted(names):
        lines.append(f"{name}{' (skip)' if verbose and names[name] else ''}\n")
    return "".join(lines)


def pfctl(state: str, node: str, argv: Sequence[str], now: float) -> Result:
    """`pfctl -s rules|info|Interfaces [-v]` (any unique prefix of the modifier, as pfctl)."""
    model = read_model(state).get(node)
    if model is None:
        return Result(1, "", f"pfctl: carpd-sim: no node {node!r}\n")
    pf = model["pf"]
    verbose, show = 0, None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg == "-":
            return Result(1, "", PFCTL_USAGE)
        flags = arg[1:]
        while flags:
            c, flags = flags[0], flags[1:]
            if c == "v":
                verbose += 1
            elif c == "s":
                if not flags:
                    if not args:
                        return Result(
                            1, "", f"pfctl: option requires an argument -- s\n{PFCTL_USAGE}"
                        )
                    flags = args.pop(0)
                show, flags = flags, ""
            else:
                return Result(1, "", f"pfctl: unknown option -- {c}\n{PFCTL_USAGE}")
    if show is None:
        return Result(1, "", PFCTL_USAGE)
    for full in ("rules", "info", "Interfaces"):
        if full.startswith(show):
            show = full
            break
    else:
        return Result(1, "", f"pfctl: Unknown show modifier '{show}'\n{PFCTL_USAGE}")
    if show == "rules":
        return Result(0, render_rules(pf, verbose), "")
    if show == "info":
        return Result(0, render_info(pf, now), "")
    return Result(0, render_ifaces(state, node, pf, verbose), "")


# --- relayctl ------------------------------------------------------------------------------


def _line(ident: int, kind: str, name: str, avail: str, status: str) -> str:
    return f"{ident:<4}\t{kind:<8}\t{name:<24}\t{avail:<7}\t{status}\n"


def render_summary(relayd: dict[str, Any], what: str) -> str:
    """relayctl.c main()'s header and show_summary_msg(): relays, their tables, their hosts."""
    out = [_line_header()]
    host_id = 1
    for n, relay in enumerate(relayd["relays"], 1):
        if what in ("summary", "relays"):
            out.append(_line(n, "relay", relay["name"], "", "active"))
        hosts = relay["hosts"]
        up = sum(1 for h in hosts if h["up"])
        if what in ("summary", "hosts"):
            status = f"active ({up} hosts)" if up else "empty"
            out.append(_line(n, "table", f"{relay['table']}:{relay['check_port']}", "", status))
        for host in hosts:
            if what in ("summary", "hosts"):
                avail = "100.00%" if host["up"] else "0.00%"
                out.append(_line(host_id, "host", host["name"], avail,
                                 "up" if host["up"] else "down"))  # fmt: skip
                if what == "hosts":
                    checks = 10
                    total = f"\t{'':>8}\ttotal: {checks if host['up'] else 0}/{checks} checks"
                    if not host["up"]:
                        total += ", error: tcp connect failed"
                    out.append(total + "\n")
            host_id += 1
    return "".join(out)


def _line_header() -> str:
    return f"{'Id':<4}\t{'Type':<8}\t{'Name':<24}\t{'Avlblty':<7}\tStatus\n"


def relayctl(state: str, node: str, argv: Sequence[str]) -> Result:
    """`relayctl show summary|hosts|relays` (parser.c accepts unique prefixes too)."""
    model = read_model(state).get(node)
    if model is None:
        return Result(1, "", f"relayctl: carpd-sim: no node {node!r}\n")
    relayd = model["relayd"]
    args = list(argv)
    if len(args) != 2 or not "show".startswith(args[0]) or not args[0]:
        return Result(1, "", RELAYCTL_USAGE)
    what = next(
        (w for w in ("summary", "hosts", "relays") if args[1] and w.startswith(args[1])), None
    )
    if what is None:
        valid = "  summary\n  sessions\n  hosts\n  redirects\n  relays\n  routers\n"
        return Result(1, "", f"unknown argument: {args[1]}\nvalid commands/args:\n{valid}")
    if not relayd["running"]:
        return Result(1, "", f"relayctl: connect: {RELAYD_SOCKET}: No such file or directory\n")
    return Result(0, render_summary(relayd, what), "")


def relayd_conf(state: str | os.PathLike[str], node: str) -> str:
    """The relayd.conf(5) that would have made the node's relays (the handbook's form)."""
    relayd = read_model(state)[node]["relayd"]
    out = []
    for relay in relayd["relays"]:
        hosts = ", ".join(h["name"] for h in relay["hosts"])
        out.append(f"table <{relay['table']}> {{ {hosts} }}\n\n")
        out.append(f'relay "{relay["name"]}" {{\n')
        out.append(f"    listen on {relay['listen']} port {relay['port']}\n")
        out.append(f"    forward to <{relay['table']}> check tcp port {relay['check_port']}\n}}\n")
    return "".join(out)


def run_service_tool(tool: str, state: str, node: str, argv: Sequence[str]) -> int:
    """What the simulated `pfctl` and `relayctl` executables run."""
    try:
        if tool == "pfctl":
            result = pfctl(state, node, argv, time.time())
        else:
            result = relayctl(state, node, argv)
    except (OSError, ValueError, KeyError) as exc:
        result = Result(1, "", f"{tool}: carpd-sim: {exc}\n")
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.stderr.flush()
    return result.code


_SCRIPT = '''#!{python} -IS
"""The simulated `{tool}` of node {node} of {state} (carpd-py's simulated OpenBSD host)."""
import sys
sys.path.insert(0, {root!r})
from carpd_py.sim.services import run_service_tool
sys.exit(run_service_tool({tool!r}, {state!r}, {node!r}, sys.argv[1:]))
'''


def install(
    state: str | os.PathLike[str], directory: str | os.PathLike[str], node: str
) -> tuple[str, str]:
    """Write `pfctl`, `relayctl` and `relayd.conf` for one node into `directory`."""
    import carpd_py  # noqa: PLC0415

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    root = str(Path(carpd_py.__file__).resolve().parent.parent)
    paths = []
    for tool in ("pfctl", "relayctl"):
        path = target / tool
        text = _SCRIPT.format(python=sys.executable, tool=tool, node=node,
                              state=os.fspath(state), root=root)  # fmt: skip
        tmp = path.with_name(f".{tool}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)
        paths.append(str(path))
    (target / "relayd.conf").write_text(relayd_conf(state, node))
    return paths[0], paths[1]


# --- faults and changes, for tests, the demo and `carpd-sim pf|relayd` ----------------------


def set_pf(
    state: str | os.PathLike[str],
    node: str,
    *,
    enabled: bool | None = None,
    states: int | None = None,
    rules: Sequence[str] | None = None,
    add_rule: str | None = None,
    remove_rule: str | None = None,
) -> None:
    """Change a node's pf: enable/disable, the state count, load rules, add or drop one rule."""
    with modify(state) as model:
        pf = model[node]["pf"]
        if enabled is not None:
            pf["enabled"] = enabled
            pf["since"] = int(time.time()) if enabled else 0
        if states is not None:
            pf["states"] = int(states)
        if rules is not None:
            pf["rules"] = list(rules)
        if add_rule is not None:
            pf["rules"].append(add_rule)
        if remove_rule is not None:
            if remove_rule not in pf["rules"]:
                raise ValueError(f"node {node}: no loaded rule {remove_rule!r}")
            pf["rules"].remove(remove_rule)


def set_relayd(
    state: str | os.PathLike[str],
    node: str,
    *,
    running: bool | None = None,
    hosts_up: dict[str, bool] | None = None,
) -> None:
    """Start/stop a node's relayd, or mark relay hosts up or down (by host name)."""
    with modify(state) as model:
        relayd = model[node]["relayd"]
        if running is not None:
            relayd["running"] = running
        for name, up in (hosts_up or {}).items():
            found = [h for r in relayd["relays"] for h in r["hosts"] if h["name"] == name]
            if not found:
                raise ValueError(f"node {node}: no relay host {name!r}")
            for host in found:
                host["up"] = up


def cli(args: Sequence[str], state: str) -> int:
    """`carpd-sim pf NODE ...` and `carpd-sim relayd NODE ...`."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="carpd-sim")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pf", help="change a node's pf")
    p.add_argument("node")
    p.add_argument("--enabled", choices=("on", "off"))
    p.add_argument("--states", type=int)
    p.add_argument("--add-rule")
    p.add_argument("--remove-rule")
    p.add_argument("--show", action="store_true", help="print the model")
    p = sub.add_parser("relayd", help="change a node's relayd")
    p.add_argument("node")
    p.add_argument("--running", choices=("on", "off"))
    p.add_argument("--host", nargs=2, action="append", metavar=("NAME", "up|down"), default=[])
    a = parser.parse_args(args)
    try:
        if a.command == "pf":
            enabled = None if a.enabled is None else a.enabled == "on"
            set_pf(state, a.node, enabled=enabled, states=a.states, add_rule=a.add_rule,
                   remove_rule=a.remove_rule)  # fmt: skip
            if a.show:
                print(json.dumps(read_model(state)[a.node]["pf"], indent=1))
        else:
            running = None if a.running is None else a.running == "on"
            hosts = {name: updown == "up" for name, updown in a.host}
            set_relayd(state, a.node, running=running, hosts_up=hosts)
    except (OSError, KeyError, ValueError) as exc:
        print(f"carpd-sim: {exc}", file=sys.stderr)
        return 1
    return 0
