"""The daemon's import diet (issue 12: resident memory for the handbook setup).

The product card fixes the packages (trio, psutil, structlog, prometheus-client), so what
they import stays: structlog brings asyncio and pickle, prometheus_client's package __init__
its HTTP servers (http.server, socketserver, wsgiref, urllib.request, email, gzip). What the
daemon itself does not need at run time is kept out, and pinned here: logging.handlers (one
class: syslog(3) is our own handler), argparse and gettext (only for -V, --help and
mistakes). The real daemon runs on the simulated pair with the metrics on, is scraped, asked
for its status and stopped, with PYTHONPROFILEIMPORTTIME set: every import of its whole life,
at start-up or later, is on its stderr. A later import that brings one of them back fails
here, with who imported it. docs/DESIGN.md ("Memory") has the figures.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from carpd_py import daemon
from carpd_py.sim.harness import Harness, wait_until

from .prometheus import free_port

WAIT = 20.0
HEAVY = ("logging.handlers", "argparse", "gettext")
# The card's packages: imported, and with them what they import (the figures are theirs).
CARD = {"trio", "psutil", "structlog", "prometheus_client"}
IMPORT = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", re.MULTILINE)


def imports(log: str) -> list[tuple[int, str]]:
    """(depth, module) of every import PYTHONPROFILEIMPORTTIME reported, in its order."""
    return [(len(m[1]) // 2, m[2]) for m in IMPORT.finditer(log)]


def importer(found: list[tuple[int, str]], at: int) -> str:
    """The chain of modules that imported found[at] (they are reported after it)."""
    depth, chain = found[at][0], [found[at][1]]
    for d, name in found[at + 1 :]:
        if d < depth:
            chain.append(name)
            depth = d
    return " <- ".join(chain)


def test_the_running_daemon_imports_the_card_and_none_of_the_heavy_modules(
    pair: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    pair.configure("A", metrics={"listen": f"127.0.0.1:{port}"}, log={"level": "info"})
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "check up" in node.log(), WAIT, "a first verdict")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert b"carpd_build_info" in r.read()
    assert pair.carpctl("A", "status", "--json").returncode == 0
    assert pair.stop("A") == 0
    found = imports(node.log())
    names = {name for _, name in found}
    assert {"carpd_py.daemon", *CARD} <= names, "no import report"
    heavy = [
        importer(found, i)
        for i, (_, name) in enumerate(found)
        if name.split(".")[0] in HEAVY or name in HEAVY
    ]
    assert heavy == []


@pytest.mark.parametrize(
    "argv",
    [[], ["-d"], ["-n"], ["-v"], ["-dv"], ["-vv", "-d"], ["-ndv"], ["-f", "x.conf"],
     ["-d", "-f", "/etc/carpd-py.conf", "-v"], ["-f", "a", "-f", "b"], ["-f", ""],
     ["-f", "-"], ["-f", "-d"], ["-fx.conf"], ["-x"], ["x"], ["--"], ["-"], ["-V"],
     ["--help"], ["-d", "extra"], ["-dx"], ["-f"]],
)  # fmt: skip
def test_the_arguments_are_read_as_argparse_reads_them(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    def outcome(parse: Callable[[list[str]], Any]) -> object:
        try:
            got = parse(argv)
        except SystemExit as exc:
            return ("exit", exc.code, capsys.readouterr())
        return (bool(got.d), bool(got.n), int(got.v), got.file)

    assert outcome(daemon.parse_args) == outcome(daemon.build_parser().parse_args)
