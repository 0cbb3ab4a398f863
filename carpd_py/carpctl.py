"""carpctl: look at the host the way carpd-py does, and talk to the running daemon."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import trio

from . import __version__
from .config import DEFAULT_PATH, Config, ConfigError, load_config
from .host import HostError, OpenBSDHost
from .inspect import format_table, inspect_report


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
    return parser


def load_cli_config(path: str | None) -> Config:
    """The config named by -f; without -f, /etc/carpd-py.conf, or the defaults if it is absent."""
    if path is None:
        if not os.path.exists(DEFAULT_PATH):
            return Config(path="(defaults)")
        path = DEFAULT_PATH
    return load_config(path)


async def _inspect(config: Config, as_json: bool) -> str:
    host = OpenBSDHost(config.platform, groups=(config.demote.group,))
    report = inspect_report(await host.read(), config)
    if as_json:
        return json.dumps(report, indent=2) + "\n"
    return format_table(report)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_cli_config(getattr(args, "file", None))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        if args.command == "inspect":
            sys.stdout.write(trio.run(_inspect, config, args.json))
            return 0
    except HostError as exc:
        print(f"carpctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2  # not reached: argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
