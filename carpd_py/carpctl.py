"""carpctl: look at the host the way carpd-py does, and talk to the running daemon."""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from . import __version__
from .config import DEFAULT_PATH, Config, ConfigError, load_config
from .host import HostError, OpenBSDHost
from .inspect import format_table, inspect_report
from .status import format_status
from .verify import NodeReport, failed, format_verify, verify
from .verifyio import local_report

TIMEOUT = 10.0  # seconds for the whole exchange with the daemon
MAX_ANSWER = 16 * 1024 * 1024  # bytes; a status document is a few KiB

MAINTENANCE_ON = (
    "the node will be demoted at the next round and stays demoted until "
    "`carpctl maintenance off`, across restarts"
)
MAINTENANCE_OFF = (
    "the node is restored once no other reason holds, every check is up "
    "and the hold-down has passed"
)


def build_parser() -> argparse.ArgumentParser:
    # -f and -s are accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-f", dest="file", metavar="FILE", default=argparse.SUPPRESS,
                        help=f"configuration file (default {DEFAULT_PATH})")  # fmt: skip
    common.add_argument("-s", dest="socket", metavar="SOCKET", default=argparse.SUPPRESS,
                        help="control socket (default: [control] socket)")  # fmt: skip
    parser = argparse.ArgumentParser(prog="carpctl", parents=[common])
    parser.add_argument("-V", "--version", action="version", version=f"carpctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inspect = sub.add_parser(
        "inspect", parents=[common], help="read the host once and show what carpd-py sees"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")
    status = sub.add_parser("status", parents=[common], help="show the running daemon's view")
    status.add_argument("--json", action="store_true", help="print JSON")
    maintenance = sub.add_parser(
        "maintenance", parents=[common], help="set or clear the maintenance demotion"
    )
    maintenance.add_argument("state", choices=("on", "off"))
    sub.add_parser("reload", parents=[common], help="make the daemon re-read its configuration")
    verify = sub.add_parser(
        "verify", parents=[common], help="run the handbook's checks on the pair (exit 1: failed)"
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    return parser


def load_cli_config(path: str | None) -> Config:
    """The config named by -f; without -f, /etc/carpd-py.conf, or the defaults if it is absent."""
    if path is None:
        if not os.path.exists(DEFAULT_PATH):
            return Config(path="(defaults)")
        path = DEFAULT_PATH
    return load_config(path)


class ClientError(Exception):
    """No usable answer from the daemon; the message is for the user (without "carpctl: ")."""


def _open_error(path: str, exc: OSError) -> ClientError:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return ClientError(f"carpd-py is not running (no socket at {path})")
    if isinstance(exc, ConnectionRefusedError):
        return ClientError(f"carpd-py is not running (stale socket {path})")
    if isinstance(exc, PermissionError):
        return ClientError(f"cannot open {path}: permission denied (run as root)")
    return ClientError(f"cannot open {path}: {exc.strerror or exc}")


def _not_ours(path: str) -> ClientError:
    return ClientError(f"{path} is not a carpd-py control socket")


def _no_answer(path: str, timeout: float) -> ClientError:
    return ClientError(f"no answer from carpd-py on {path} within {timeout:g}s")


def _connect(path: str, end: float, timeout: float) -> socket.socket:
    """A socket connected to `path`. A unix socket whose listen queue is full refuses a
    non-blocking connect with EAGAIN (the daemon is busy, or hung): try again until `end`."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(max(end - time.monotonic(), 0.001))
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() >= end:
                raise _no_answer(path, timeout) from None
            time.sleep(min(0.05, max(end - time.monotonic(), 0.0)))
        except TimeoutError:
            sock.close()
            raise _no_answer(path, timeout) from None
        except OSError as exc:
            sock.close()
            raise _open_error(path, exc) from None


def call(path: str, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """One request to the daemon on the control socket at `path`, and its answer, ok or not,
    within `timeout` seconds (TIMEOUT by default) for the whole exchange.

    Raises ClientError when no carpd-py answers there, with the reason in plain words.
    """
    timeout = TIMEOUT if timeout is None else timeout
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _open_error(path, exc) from None
    except ValueError:  # a NUL in the path
        raise _not_ours(path) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise _not_ours(path)
    end = time.monotonic() + timeout
    with _connect(path, end, timeout) as sock:
        data = bytearray()
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            while b"\n" not in data and len(data) <= MAX_ANSWER:
                sock.settimeout(max(end - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise _no_answer(path, timeout) from None
        except OSError as exc:
            raise ClientError(f"{path}: connection lost: {exc.strerror or exc}") from None
    line, newline, _ = bytes(data).partition(b"\n")
    try:
        answer = json.loads(line) if newline else None
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise _not_ours(path)
    if not answer["ok"] and not isinstance(answer.get("error"), str):
        raise _not_ours(path)
    return answer


def _ask(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The body of a successful answer; ClientError with the daemon's error otherwise."""
    answer = call(path, request)
    if not answer.pop("ok"):
        raise ClientError(str(answer["error"]))
    return answer


def _talk(args: argparse.Namespace, path: str) -> str:
    """Run a daemon command; what to print."""
    if args.command == "status":
        doc = _ask(path, {"cmd": "status"})
        if args.json:
            return json.dumps(doc, indent=2) + "\n"
        try:
            return format_status(doc)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            version = doc.get("version", "unknown")
            raise ClientError(
                f"cannot read the status of carpd-py {version} on {path} (try --json)"
            ) from None
    if args.command == "maintenance":
        on = args.state == "on"
        answer = _ask(path, {"cmd": "maintenance", "on": on})
        already = " (it was already on)" if on else " (it was already off)"
        note = already if answer.get("changed") is False else ""
        return f"maintenance {args.state}{note}: {MAINTENANCE_ON if on else MAINTENANCE_OFF}\n"
    answer = _ask(path, {"cmd": "reload"})
    message = answer.get("message")
    return f"{message if isinstance(message, str) else 'reload: done'}\n"


async def _inspect(config: Config, as_json: bool) -> str:
    host = OpenBSDHost(config.platform, groups=(config.demote.group,))
    report = inspect_report(await host.read(), config)
    if as_json:
        return json.dumps(report, indent=2) + "\n"
    return format_table(report)


async def _verify(config: Config, path: str, as_json: bool) -> tuple[str, bool, str]:
    """Read this node directly; its share and the peer's report from the daemon, if it runs."""
    our_share: int | None = None
    peer: NodeReport | None = None
    note = ""
    try:
        answer = await trio.to_thread.run_sync(partial(_ask, path, {"cmd": "verify"}))
    except ClientError as exc:
        note = f"carpctl: {exc}: no peer report, carpd-py's share unknown\n"
    else:
        local = answer.get("local")
        if isinstance(local, dict):
            our_share = local.get("our_share") if isinstance(local.get("our_share"), int) else None
        elif config.demote.method == "advskew":
            our_share = 0
        if isinstance(answer.get("peer"), dict):
            try:
                peer = NodeReport.from_json(answer["peer"])
            except ValueError:
                note = "carpctl: the peer's report could not be read\n"
    if config.demote.method == "advskew":
        our_share = 0  # carpd-py never touches the counter with this method
    report = await local_report(config, our_share)
    document = verify(report, peer, config)
    text = json.dumps(document, indent=2) + "\n" if as_json else format_verify(document)
    return text, failed(document), note


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    file: str | None = getattr(args, "file", None)
    path: str | None = getattr(args, "socket", None)
    # The config is read for inspect, for the socket's path, and whenever -f names one.
    config = Config(path="(defaults)")
    if args.command in ("inspect", "verify") or path is None or file is not None:
        try:
            config = load_cli_config(file)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
    try:
        if args.command == "inspect":
            sys.stdout.write(trio.run(_inspect, config, args.json))
            return 0
        if args.command == "verify":
            where = path if path is not None else config.control.socket
            text, bad, note = trio.run(_verify, config, where, args.json)
            sys.stdout.write(text)
            sys.stderr.write(note)
            return 1 if bad else 0
        if args.command in ("status", "maintenance", "reload"):
            sys.stdout.write(_talk(args, path if path is not None else config.control.socket))
            return 0
    except (HostError, ClientError) as exc:
        print(f"carpctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2  # not reached: argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
