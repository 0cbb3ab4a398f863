"""make demo: the handbook's failover story, told by two real carpd-py daemons.

The pair of the handbook chapter (node A MASTER advskew 0, node B BACKUP advskew 100, carp0
vhid 10 on em0, carp1 vhid 20 on em1, pfsync0 over em2, preempt on) runs on the simulated
OpenBSD host; each node runs the real `carpd-py` with the real host adapter, and the two
daemons decide together over UDP ([peer]). The story: A's SYNC port fails, A demotes, B
takes over; the port comes back, A restores its exact advskew and takes MASTER back; the
direct SYNC cable is pulled (both ends): nothing moves, both say why; A loses its upstream,
B takes over; the ISP both use goes down: nothing moves; and A is put in maintenance;
then `carpctl verify` on A runs the handbook's checks on both nodes (the daemons exchange their
reports), which pass on the healthy pair, until B loads a pf ruleset that differs from A's.
Every step is checked: the demo exits 1 if the story does not happen as told.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sim import services
from .sim.harness import Harness

STEP_TIMEOUT = 15.0
# What the daemons log that the timeline shows (their role-change lines are left out: the
# kernel's own transitions are shown instead, when they happen).
WATCHED = ("demoting", "restoring", "set carp", "check ", "maintenance o", "by hand", "failed",
           "both nodes", "peer up", "peer lost", "split")  # fmt: skip


class Upstream:
    """A TCP service on 127.0.0.1 standing for the ISP gateway: stop it and probes are refused."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.port = 0

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self.sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):  # wakes the accept() of the thread (Linux)
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None


@dataclass
class Story:
    harness: Harness
    out: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    offsets: dict[str, int] = field(default_factory=dict)
    kernel_seen: int = 0
    failures: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def roles(self) -> str:
        parts = []
        for name in self.harness.nodes:
            roles = self.harness.roles(name)
            skews = self.harness.advskews(name)
            shown = " ".join(f"{i}:{roles[i][0]}/{skews[i]}" for i in sorted(roles))
            parts.append(f"{name}[{shown}]")
        return "  ".join(parts)

    def say(self, node: str, event: str) -> None:
        t = time.monotonic() - self.started
        self.out(f"{t:6.1f}s  {node:<2} {event[:62]:<62} {self.roles()}")

    def pump(self) -> None:
        """Print what the daemons logged and what the kernel did since the last look."""
        events = self.harness.world.events()
        for e in events[self.kernel_seen :]:
            if e.is_transition:
                where = e.iface if e.vhid is None else f"{e.iface} vhid {e.vhid}"
                self.say(e.node, f"kernel: {where} {e.old} -> {e.new}")
        self.kernel_seen = len(events)
        for name, node in self.harness.nodes.items():
            text = node.log()
            new = text[self.offsets.get(name, 0) :]
            self.offsets[name] = len(text)
            for line in new.splitlines():
                body = line.split(" ", 1)[1] if " " in line else line
                level, _, message = body.partition(" ")
                if any(w in message for w in WATCHED) and " -> " not in message:
                    self.say(name, f"carpd-py {level.strip()}: {message.strip()}")

    def wait(self, what: str, done: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> bool:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.pump()
            if done():
                self.timings.append((what, time.monotonic() - start))
                return True
            time.sleep(0.05)
        self.pump()
        self.failures.append(what)
        self.say("!!", f"NOT within {timeout:g}s: {what}")
        return False

    def holds(self, what: str, still: Callable[[], bool], seconds: float = 2.5) -> bool:
        """`still` holds for `seconds` (nothing moves)."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            self.pump()
            if not still():
                self.failures.append(what)
                self.say("!!", f"CHANGED: {what}")
                return False
            time.sleep(0.05)
        self.timings.append((what, time.monotonic() - start))
        return True

    def logged(self, node: str, text: str, times: int = 1) -> Callable[[], bool]:
        return lambda: self.harness.nodes[node].log().count(text) >= times

    def masters(self, node: str) -> bool:
        return set(self.harness.roles(node).values()) == {"MASTER"}

    def skews(self, node: str, value: int) -> bool:
        return set(self.harness.advskews(node).values()) == {value}


def scrape(url: str, prefix: str) -> str:
    """The samples of one metric family, as one short line (the demo reads its own metrics)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our http URL)
            text = response.read().decode()
    except OSError as exc:
        return f"cannot scrape {url}: {exc}"
    found = [
        line
        for line in text.splitlines()
        if line.startswith(prefix) and float(line.rsplit(" ", 1)[1]) != 0
    ]
    return " ".join(found) or f"no {prefix} sample above 0"


def tell(story: Story, gateways: dict[str, Upstream], metrics_url: str | None = None) -> None:
    h, say = story.harness, story.say
    say("", "both daemons start: A is MASTER (advskew 0), B BACKUP (advskew 100)")
    story.wait("A manages its carp interfaces", lambda: "check up" in h.nodes["A"].log())
    story.wait("B is ready", lambda: "check up" in h.nodes["B"].log())
    for name in h.nodes:
        story.wait(f"{name} hears its peer", story.logged(name, "peer up: deciding together"))

    def untouched() -> bool:
        return story.masters("A") and story.skews("A", 0) and story.skews("B", 100)

    say("A", "FAULT: A's SYNC port dies (A's em2 no carrier; B's link stays up)")
    h.world.set_link("A", "em2", up=False)
    story.wait("A demotes to advskew 240 (its own fault)", lambda: story.skews("A", 240))
    story.wait("B takes MASTER", lambda: story.masters("B"))

    say("A", "REPAIR: A's SYNC port is back")
    h.world.set_link("A", "em2", up=True)
    story.wait("A restores advskew 0 after rise and hold-down", lambda: story.skews("A", 0))
    story.wait("A is MASTER again (preempt)", lambda: story.masters("A"))
    story.wait("B keeps its own advskew 100", lambda: story.skews("B", 100))

    say("", "FAULT: the direct SYNC cable is pulled (both ends lose carrier)")
    h.world.set_link("A", "em2", up=False)
    h.world.set_link("B", "em2", up=False)
    both = "sync lost on both nodes: failover would not help"
    story.wait("A says why it does not fail over", story.logged("A", both))
    story.wait("B says the same", story.logged("B", both))
    story.holds("nothing moves: A MASTER at 0, B at 100", untouched)
    say("", "REPAIR: the SYNC cable is back")
    ups = {name: node.log().count("check up check=sync") for name, node in h.nodes.items()}
    h.world.set_link("A", "em2", up=True)
    h.world.set_link("B", "em2", up=True)
    for name in h.nodes:
        story.wait(
            f"{name}'s sync check is up again",
            story.logged(name, "check up check=sync", ups[name] + 1),
        )
    story.holds("still nothing moves", untouched, 1.0)

    say("A", "FAULT: A's upstream gateway stops answering (tcp connect refused)")
    gateways["A"].stop()
    story.wait("A demotes for upstream:isp", lambda: story.skews("A", 240))
    story.wait("B takes MASTER", lambda: story.masters("B"))
    say("A", "REPAIR: A's upstream answers again")
    gateways["A"].start()
    story.wait("A restores advskew 0", lambda: story.skews("A", 0))
    story.wait("A is MASTER again", lambda: story.masters("A"))

    say("", "FAULT: the ISP both nodes use goes down (both gateways silent)")
    gateways["A"].stop()
    gateways["B"].stop()
    both = "upstream:isp lost on both nodes: failover would not help"
    story.wait("A says why it does not fail over", story.logged("A", both))
    story.wait("B says the same", story.logged("B", both))
    story.holds("nothing moves: two failovers for nothing avoided", untouched)
    say("", "REPAIR: the ISP is back")
    ups = {name: node.log().count("check up check=upstream") for name, node in h.nodes.items()}
    gateways["A"].start()
    gateways["B"].start()
    for name in h.nodes:
        story.wait(
            f"{name}'s upstream check is up again",
            story.logged(name, "check up check=upstream", ups[name] + 1),
        )
    story.holds("still nothing moves", untouched, 1.0)

    say("A", "OPERATOR: carpctl maintenance on")
    done = h.carpctl("A", "maintenance", "on")
    if done.returncode != 0:
        story.failures.append(f"carpctl maintenance on: {done.stderr.strip()}")
    story.wait("A demotes for maintenance", lambda: story.skews("A", 240))
    story.wait("B takes MASTER", lambda: story.masters("B"))
    status = h.carpctl("A", "status")
    for line in status.stdout.splitlines()[:1]:
        say("A", f"carpctl status: {line}")
    if metrics_url is not None:
        say("A", "metrics: " + scrape(metrics_url, "carpd_demotion_reason"))
    say("A", "OPERATOR: carpctl maintenance off")
    h.carpctl("A", "maintenance", "off")
    story.wait("A restores advskew 0", lambda: story.skews("A", 0))
    story.wait("A is MASTER again", lambda: story.masters("A"))


@dataclass
class Verified:
    """One run of `carpctl verify --json` on a node."""

    code: int
    doc: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        none = {"result": "none", "nodes": {}}
        return next((c for c in self.doc.get("checks", ()) if c["check"] == name), none)

    def sees_both(self) -> bool:
        """Every check has the peer's report (none says "no peer report")."""
        checks = self.doc.get("checks", ())
        return bool(checks) and all("peer" not in c["nodes"] for c in checks)


def carpctl_verify(h: Harness, node: str) -> Verified:
    done = h.carpctl(node, "verify", "--json")
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        doc = {}
    return Verified(done.returncode, doc if isinstance(doc, dict) else {})


def tell_verify(story: Story) -> None:
    """carpctl verify on the healthy pair (the daemons exchange their reports over the pair
    channel, so A checks both nodes), then a rules mismatch that it names."""
    h, say = story.harness, story.say
    say("A", "OPERATOR: carpctl verify (the handbook's checks, both nodes)")
    last: list[Verified] = []

    def verified(predicate: Callable[[Verified], bool]) -> Callable[[], bool]:
        def done() -> bool:
            last[:] = [carpctl_verify(h, "A")]
            return predicate(last[0])

        return done

    healthy = lambda v: v.sees_both() and v.code == 0 and v.doc.get("result") == "ok"  # noqa: E731
    if story.wait("carpctl verify on A: both nodes ok, exit 0", verified(healthy)):
        say("A", f"carpctl verify: exit {last[0].code}, result: {last[0].doc['result']}, "
                 f"{len(last[0].doc['checks'])} checks on A and B")  # fmt: skip
    say("B", "FAULT: B loads a pf ruleset with one rule more than A's")
    services.set_pf(h.world.path, "B", add_rule="pass in on em0 proto tcp to port 22")
    mismatch = lambda v: v.code == 1 and v.check("rules_match")["result"] == "failure"  # noqa: E731
    if story.wait("carpctl verify on A names the rules mismatch, exit 1", verified(mismatch)):
        say("A", f"carpctl verify: exit {last[0].code}, result: {last[0].doc['result']}")
        for node, seen in last[0].check("rules_match")["nodes"].items():
            say(node, f"rules_match: {seen}")
    say("B", "REPAIR: B loads the same ruleset as A")
    services.set_pf(h.world.path, "B", remove_rule="pass in on em0 proto tcp to port 22")
    story.wait("carpctl verify on A: ok again, exit 0", verified(healthy))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def configure(h: Harness, gateways: dict[str, Upstream]) -> dict[str, str]:
    """Write both configs; return each node's metrics URL."""
    h.pair_up()
    urls = {}
    for name in h.nodes:
        listen = f"127.0.0.1:{free_port()}"
        urls[name] = f"http://{listen}/metrics"
        over: dict[str, object] = {
            "interval": 0.25,
            "metrics": {"listen": listen},
            "demote": {"hold_down": 2.0},
            "sync": {"interface": "pfsync0", "fall": 2, "rise": 3},
            "verify": {"interval": 0.5},
        }
        port = gateways[name].port
        isp = {"name": "isp", "method": "tcp", "targets": ["127.0.0.1"], "port": port}
        over["upstream"] = [{**isp, "timeout": 0.2, "fall": 2, "rise": 3}]
        h.configure(name, **over)
    return urls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carpd-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    def out(line: str) -> None:
        print(line, flush=True)

    work = Path(tempfile.mkdtemp(prefix="carpd-demo-"))
    out(__doc__.strip().split("\n\n")[1].replace("\n", " ") + "\n")
    out(f"work directory: {work}   (roles: carpN:M=MASTER B=BACKUP I=INIT /advskew)\n")
    h = Harness(work, topology="handbook")
    gateways = {name: Upstream() for name in h.nodes}
    for gateway in gateways.values():
        gateway.start()
    urls = configure(h, gateways)
    for name, url in urls.items():
        out(f"node {name}: carpd-py metrics at {url}   (curl -s {url} | grep ^carpd_demoted)")
    out("")
    story = Story(h, out)
    try:
        for name in h.nodes:
            h.start(name)
        tell(story, gateways, urls.get("A"))
        tell_verify(story)
    finally:
        h.stop_all()
        for gateway in gateways.values():
            gateway.stop()
        story.pump()
    out("\nsummary:")
    for what, took in story.timings:
        out(f"  ok   {what:<52} {took:5.2f}s")
    for what in story.failures:
        out(f"  FAIL {what}")
    logged = [e for e in h.world.events() if e.text]  # the log lines, not the link events
    out(f"\nkernel log of the pair ({len(logged)} lines), last transitions:")
    lines = [e.syslog_line("fw1" if e.node == "A" else "fw2") for e in logged]
    for line in [x for x in lines if "state transition" in x][-6:]:
        out(f"  {line}")
    if not args.keep:
        import shutil  # noqa: PLC0415

        shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - story.started
    if story.failures:
        out(f"\nthe story did NOT happen as told ({len(story.failures)} steps failed)")
        return 1
    out(f"\nthe story happened as told, in {total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
