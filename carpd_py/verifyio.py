"""The slow reads behind `carpctl verify` and the daemon's checks: pfctl, relayctl, relayd.conf.

Each command runs under `platform.command_timeout`; what cannot be read is recorded in
`Reads.errors` (a warning in the checks), never raised.
"""

from __future__ import annotations

import socket

import trio

from .config import Config
from .host import HostError, OpenBSDHost
from .model import HostView
from .nodereport import NodeReport, Reads, build_report
from .probes.exec import first_line
from .run import RunTimeout, run

PFCTL_READS = {"pf_rules": ("-sr",), "pf_info": ("-si",), "pf_ifaces": ("-sI", "-v")}


def node_name(config: Config) -> str:
    return config.verify.name or socket.gethostname().split(".")[0]


async def _run(argv: tuple[str, ...], timeout: float) -> tuple[str | None, str | None]:
    """(stdout, None) on exit 0; (None, why) otherwise."""
    try:
        done = await run(argv, timeout)
    except RunTimeout:
        return None, f"{argv[0]}: no answer within {timeout:g}s"
    except OSError as exc:
        return None, f"{argv[0]}: cannot run: {exc.strerror or exc}"
    if done.returncode != 0:
        why = first_line(done.stderr) or first_line(done.stdout) or f"exit {done.returncode}"
        return None, why
    return done.stdout, None


async def read_services(config: Config) -> Reads:
    """pfctl -sr, -si, -sI -v, relayctl show summary and relayd.conf, all at once."""
    timeout = config.platform.command_timeout
    out: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    relayd_down = False

    async def pf(key: str, args: tuple[str, ...]) -> None:
        out[key], why = await _run((config.platform.pfctl, *args), timeout)
        if why is not None:
            errors.setdefault("pfctl", why)

    async def relayd() -> None:
        nonlocal relayd_down
        out["relayd_summary"], why = await _run((config.platform.relayctl, "show", "summary"),
                                                 timeout)  # fmt: skip
        if why is not None:
            if "cannot run" in why:
                errors["relayctl"] = why
            else:
                relayd_down = True  # relayctl ran: relayd does not answer
        try:
            path = trio.Path(config.verify.relayd_conf)
            out["relayd_conf"] = (await path.read_bytes())[: 1 << 20].decode("utf-8", "replace")
        except OSError:
            out["relayd_conf"] = None

    async with trio.open_nursery() as nursery:
        for key, args in PFCTL_READS.items():
            nursery.start_soon(pf, key, args)
        nursery.start_soon(relayd)
    return Reads(**out, relayd_down=relayd_down, errors=errors)


async def local_report(
    config: Config, our_share: int | None, view: HostView | None = None
) -> NodeReport:
    """This node's report: a fresh read of the host (unless given) and the slow reads."""
    reads = await read_services(config)
    if view is None:
        try:
            view = await OpenBSDHost(config.platform, groups=(config.demote.group,)).read()
        except HostError as exc:
            errors = {**reads.errors, "ifconfig": str(exc)}
            return NodeReport(node=node_name(config), errors=errors)
    return build_report(node_name(config), view, config, reads, our_share)
