"""ICMP probes: packet building and parsing, and real echoes on loopback only.

The tests that need an answer to go missing run in a private network namespace (`unshare
--net`): this file, run as a script there, sets up that namespace's loopback and sysctls, runs
one scenario and prints its measurements as JSON. The namespace dies with the process, so there
is nothing to clean up; the tests still check that the host's sysctls did not change.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import trio

from carpd_py.config import UpstreamConfig
from carpd_py.logsetup import Log
from carpd_py.prober import Probes
from carpd_py.probes import Pinger, Pingers, probe_group
from carpd_py.probes.icmp import ECHO_REPLY, ECHO_REQUEST, checksum, echo_request, parse_echo_reply

V4, V6 = socket.AF_INET, socket.AF_INET6
IN_CI = os.environ.get("CI") == "true"
REPO = Path(__file__).resolve().parent.parent
HOST_SYSCTLS = (
    "net/ipv4/ping_group_range",
    "net/ipv4/icmp_echo_ignore_all",
    "net/ipv6/icmp/echo_ignore_all",
)


def require(ok: bool, why: str) -> None:
    """Skip a test that cannot run here; in CI (CI=true) fail instead: CI must run them all."""
    if not ok:
        if IN_CI:
            pytest.fail(f"{why} (CI=true: a missing tool or privilege is a failure)")
        pytest.skip(why)


def icmp(family: socket.AddressFamily, kind: int, code: int, ident: int, seq: int,
         payload: bytes) -> bytes:  # fmt: skip
    """An ICMP(v6) echo message with a valid checksum (ICMPv6: the kernel's job, left 0)."""
    packet = struct.pack("!BBHHH", kind, code, 0, ident, seq) + payload
    if family == V6:
        return packet
    return packet[:2] + struct.pack("!H", checksum(packet)) + packet[4:]


def ipv4_header(payload_len: int, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + payload_len, 1, 0, 64, 1, 0,
                         socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))  # fmt: skip
    return header + options


# --- packets: pure ---


def test_checksum_known_value() -> None:
    # RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF  # odd length: padded with a zero byte


def test_echo_request_v4_has_a_valid_checksum() -> None:
    packet = echo_request(V4, 0x1234, 7, b"abc")
    assert packet[0] == 8
    assert packet[1] == 0
    assert struct.unpack_from("!HH", packet, 4) == (0x1234, 7)
    assert checksum(packet) == 0


def test_echo_request_v6_leaves_the_checksum_to_the_kernel() -> None:
    packet = echo_request(V6, 1, 2, b"x")
    assert packet == bytes([128, 0, 0, 0, 0, 1, 0, 2]) + b"x"


@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x00"])
def test_parse_v4_raw_skips_the_ip_header(options: bytes) -> None:
    reply = icmp(V4, 0, 0, 0xBEEF, 9, b"payload")
    packet = ipv4_header(len(reply), options) + reply
    assert parse_echo_reply(packet, V4, ip_header=True) == (0xBEEF, 9, b"payload")


def test_parse_without_ip_header() -> None:
    assert parse_echo_reply(icmp(V4, 0, 0, 1, 2, b"p"), V4, ip_header=False) == (1, 2, b"p")
    assert parse_echo_reply(icmp(V6, 129, 0, 1, 2, b"p"), V6, ip_header=False) == (1, 2, b"p")


@pytest.mark.parametrize(
    ("family", "packet"),
    [
        (V4, icmp(V4, 8, 0, 1, 2, b"p")),  # our own echo request, seen on loopback
        (V4, icmp(V4, 0, 1, 1, 2, b"p")),  # wrong code
        (V4, icmp(V4, 3, 1, 1, 2, b"p")),  # destination unreachable
        (V4, icmp(V4, 0, 0, 1, 2, b"p")[:2] + b"\0\0" + icmp(V4, 0, 0, 1, 2, b"p")[4:]),  # cksum
        (V4, icmp(V4, 0, 0, 1, 2, b"")[:7]),  # truncated
        (V6, icmp(V6, 128, 0, 1, 2, b"p")),  # echo request
        (V6, icmp(V6, 0, 0, 1, 2, b"p")),  # an ICMPv4 reply type means nothing in ICMPv6
        (V6, icmp(V6, 129, 0, 1, 2, b"")[:5]),
    ],
)
def test_parse_ignores_everything_else(family: socket.AddressFamily, packet: bytes) -> None:
    assert parse_echo_reply(packet, family, ip_header=False) is None


@pytest.mark.parametrize(
    "packet",
    [
        b"\x45" + b"\0" * 10,  # shorter than an IPv4 header
        b"\x65" + b"\0" * 19 + icmp(V4, 0, 0, 1, 2, b""),  # version 6
        b"\x44" + b"\0" * 19 + icmp(V4, 0, 0, 1, 2, b""),  # IHL below 5
        b"\x4f" + b"\0" * 19 + icmp(V4, 0, 0, 1, 2, b""),  # IHL past the end
    ],
)
def test_parse_ignores_bad_ip_headers(packet: bytes) -> None:
    assert parse_echo_reply(packet, V4, ip_header=True) is None


# --- Pinger on the host's loopback ---


@pytest.fixture(scope="session")
def icmp_sockets() -> None:
    """Skip (or in CI fail) where this process may open no ICMP socket at all."""
    for kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):
        try:
            socket.socket(V4, kind, socket.IPPROTO_ICMP).close()
            return
        except PermissionError:
            pass
    require(False, "no ICMP socket: needs root, or a group in net.ipv4.ping_group_range")


@pytest.fixture
async def pingers(nursery: trio.Nursery, icmp_sockets: None) -> tuple[Pinger, Pinger]:
    v4, v6 = Pinger(V4), Pinger(V6)
    await nursery.start(v4.run)
    await nursery.start(v6.run)
    return v4, v6


async def test_ping_loopback_answers(pingers: tuple[Pinger, Pinger]) -> None:
    v4, v6 = pingers
    if os.geteuid() == 0:
        assert (v4.kind, v6.kind) == ("raw", "raw")
    with trio.fail_after(5):
        for pinger, address in ((v4, "127.0.0.1"), (v6, "::1"), (v4, "127.0.0.1")):
            rtt = await pinger.ping(address, 2.0)
            assert rtt is not None
            assert 0 <= rtt < 2.0


async def test_pingers_pick_the_family(pingers: tuple[Pinger, Pinger]) -> None:
    both = Pingers(pingers)
    with trio.fail_after(5):
        assert await both.ping("::1", 2.0) is not None
        assert await both.ping("127.0.0.1", 2.0) is not None
    with pytest.raises(ValueError, match="no Pinger for AF_INET6"):
        await Pingers([pingers[0]]).ping("::1", 1.0)


async def test_ping_many_targets_concurrently(pingers: tuple[Pinger, Pinger]) -> None:
    # All of 127/8 is local on Linux: 64 targets, 64 replies from 64 sources, one socket.
    v4, _ = pingers
    rtts: dict[str, float | None] = {}

    async def one(address: str) -> None:
        rtts[address] = await v4.ping(address, 2.0)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for i in range(1, 65):
                nursery.start_soon(one, f"127.0.0.{i}")
    assert len(rtts) == 64
    assert all(rtt is not None for rtt in rtts.values())


async def test_ping_all_answers_each_address_in_order_at_once(
    pingers: tuple[Pinger, Pinger],
) -> None:
    # One batch: 64 echoes leave together, one wake-up returns them all, in the given order.
    v4, v6 = pingers
    addresses = [f"127.0.0.{i}" for i in range(64, 0, -1)]
    with trio.fail_after(5):
        rtts = await v4.ping_all(addresses, 2.0)
        assert await v6.ping_all(["::1", "::1"], 2.0) == [pytest.approx(0, abs=1.0)] * 2
        start = trio.current_time()
        assert await v4.ping_all([], 2.0) == []
        assert trio.current_time() - start < 0.5  # nothing to wait for
    assert len(rtts) == 64
    assert all(rtt is not None and 0 <= rtt < 2.0 for rtt in rtts)
    assert v4._waiters == {}  # nothing left behind


async def test_probes_ping_all_splits_the_families_and_keeps_the_order(
    pingers: tuple[Pinger, Pinger],
) -> None:
    v4, v6 = pingers
    probes = Probes(Log())
    probes.pingers = {V4: v4, V6: v6}
    with trio.fail_after(5):
        rtts = await probes.ping_all(["::1", "127.0.0.1", "::1", "127.0.0.2"], 2.0)
        assert all(rtt is not None for rtt in rtts)
        probes.pingers = {V4: v4}  # no ICMPv6 socket: those probes get no answer
        start = trio.current_time()
        rtts = await probes.ping_all(["127.0.0.1", "::1"], 0.3)
        assert rtts[0] is not None
        assert rtts[1] is None
        assert trio.current_time() - start >= 0.3
        assert await probes.ping("127.0.0.3", 2.0) is not None
    upstream = UpstreamConfig("isp", "icmp", ("127.0.0.1", "::1"), min_up=2)
    with trio.fail_after(5):
        result = await probes.group(upstream)
    assert not result.good
    assert result.failed == ("::1",)
    assert result.detail == "1/2 answered (min_up 2)"


async def test_icmp_round_asks_the_peer_and_every_icmp_group_in_one_batch(
    pingers: tuple[Pinger, Pinger],
) -> None:
    v4, _ = pingers
    probes = Probes(Log())
    probes.pingers = {V4: v4}  # no ICMPv6 socket: ::1 gets no answer
    isp = UpstreamConfig("isp", "icmp", ("127.0.0.2", "127.0.0.3"), min_up=2, timeout=0.3)
    lan = UpstreamConfig("lan", "icmp", ("::1", "127.0.0.4"), min_up=2, timeout=0.2)
    with trio.fail_after(5):
        start = trio.current_time()
        done = await probes.icmp_round(("127.0.0.1", 0.5), (isp, lan))
        took = trio.current_time() - start
    assert done.peer is not None
    assert done.peer_took == done.peer
    assert [g.good for g in done.groups] == [True, False]
    assert done.groups[0].detail == "2/2 answered (min_up 2)"
    assert done.groups[0].duration < 0.3
    assert (done.groups[1].failed, done.groups[1].duration) == (("::1",), 0.2)
    assert 0.5 <= took < 1.5  # the longest timeout of the batch (the peer's), not their sum
    with trio.fail_after(5):
        alone = await probes.icmp_round(None, (isp,))
    assert (alone.peer, alone.groups[0].good) == (None, True)


async def test_ping_refuses_names_and_the_other_family(pingers: tuple[Pinger, Pinger]) -> None:
    v4, v6 = pingers
    with pytest.raises(ValueError, match="not an IP address"):
        await v4.ping("localhost", 1.0)
    with pytest.raises(ValueError, match="AF_INET Pinger"):
        await v4.ping("::1", 1.0)
    with pytest.raises(ValueError, match="AF_INET6 Pinger"):
        await v6.ping("127.0.0.1", 1.0)


async def test_ping_before_run_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        await Pinger(V4).ping("127.0.0.1", 1.0)


def test_pinger_needs_an_ip_family() -> None:
    with pytest.raises(ValueError, match="not an IP address family"):
        Pinger(socket.AF_UNIX)


async def test_a_group_round_with_real_pings(pingers: tuple[Pinger, Pinger]) -> None:
    upstream = UpstreamConfig("isp", "icmp", ("127.0.0.1", "127.0.0.2", "::1"), min_up=3)
    with trio.fail_after(5):
        result = await probe_group(upstream, Pingers(pingers).ping)
    assert result.good
    assert all(t.rtt is not None and t.rtt < 1.0 for t in result.targets)


# --- in a private network namespace: no answer, forged answers, the ping socket fallback ---


@pytest.fixture(scope="session")
def netns() -> None:
    """Skip (or in CI fail) where the network namespace tests cannot run."""
    require(sys.platform.startswith("linux"), "network namespaces are Linux only")
    require(os.geteuid() == 0, "needs root (network namespaces)")
    missing = [tool for tool in ("unshare", "ip", "setpriv") if shutil.which(tool) is None]
    require(not missing, f"needs {', '.join(missing)} (Debian: util-linux, iproute2)")
    works = subprocess.run(["unshare", "--net", "true"], check=False, timeout=10)
    require(works.returncode == 0, "unshare --net is not permitted here")


async def in_netns(scenario: str, *, drop_raw: bool = False) -> dict[str, Any]:
    """Run `scenario` (below) in a new network namespace; its JSON output.

    `drop_raw`: without CAP_NET_RAW (setpriv), as an unprivileged daemon would be.
    """
    setpriv = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--"]
    argv = ["unshare", "--net", "--", *(setpriv if drop_raw else []), sys.executable, __file__]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = host_sysctls()
    with trio.fail_after(30):
        done = await trio.run_process(
            [*argv, scenario], capture_stdout=True, capture_stderr=True, check=False, env=env
        )
    assert host_sysctls() == before
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def host_sysctls() -> dict[str, str]:
    return {name: Path("/proc/sys", name).read_text() for name in HOST_SYSCTLS}


async def test_no_answer_is_none_after_the_timeout(netns: None) -> None:
    out = await in_netns("silent")
    for address in ("127.0.0.1", "::1"):
        rtt, took = out[address]
        assert rtt is None
        assert 0.3 <= took < 0.8


async def test_sixty_four_pings_in_flight_use_one_socket(netns: None) -> None:
    out = await in_netns("silent")
    assert out["fds_during"] == out["fds_before"]
    assert out["many"] == [None] * 64


async def test_stopping_the_pinger_ends_pings_in_flight(netns: None) -> None:
    out = await in_netns("silent")
    rtt, took = out["stopped"]
    assert rtt is None
    assert took < 1.0  # its timeout was 5 s: it did not wait for it


async def test_forged_replies_are_ignored(netns: None) -> None:
    # Our own responder answers each echo with near misses only: wrong payload, seq, id,
    # code, type, length, checksum, or the right reply from another address.
    out = await in_netns("junk")
    assert out == {"127.0.0.1": None, "::1": None, "requests": ["127.0.0.1", "::1"]}


async def test_the_right_reply_is_taken(netns: None) -> None:
    out = await in_netns("right")  # same responder, right replies (twice each)
    assert out["requests"] == ["127.0.0.1", "::1"]
    for address in ("127.0.0.1", "::1"):
        assert out[address] is not None
        assert 0 <= out[address] < 1.0


async def test_send_errors_are_none_at_once(netns: None) -> None:
    out = await in_netns("down")  # loopback down: sendto fails with ENETUNREACH
    for address in ("127.0.0.1", "::1"):
        rtt, took = out[address]
        assert rtt is None
        assert took < 0.5  # timeout 2 s


async def test_without_raw_sockets_linux_falls_back_to_ping_sockets(netns: None) -> None:
    out = await in_netns("dgram", drop_raw=True)
    assert "Operation not permitted" in out["raw_forced"]
    assert "net.ipv4.ping_group_range" in out["no_ping_group"]
    assert out["kinds"] == ["dgram", "dgram"]
    for address in ("127.0.0.1", "127.0.0.2", "::1"):
        assert out[address] is not None
        assert 0 <= out[address] < 1.0


# --- the scenarios, run by `python tests/test_probes_icmp.py SCENARIO` inside the namespace ---


def _sysctl(name: str, value: str) -> None:
    Path("/proc/sys", name).write_text(value)


async def _started(nursery: trio.Nursery, *pingers: Pinger) -> Pingers:
    for pinger in pingers:
        await nursery.start(pinger.run)
    return Pingers(pingers)


async def _timed(ping: Callable[[str, float], Awaitable[float | None]], address: str,
                 timeout: float) -> tuple[float | None, float]:  # fmt: skip
    start = trio.current_time()
    rtt = await ping(address, timeout)
    return rtt, trio.current_time() - start


async def _silent() -> dict[str, Any]:
    _sysctl("net/ipv4/icmp_echo_ignore_all", "1")
    _sysctl("net/ipv6/icmp/echo_ignore_all", "1")
    out: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        v4 = Pinger(V4)
        pingers = await _started(nursery, v4, Pinger(V6))
        for address in ("127.0.0.1", "::1"):
            out[address] = await _timed(pingers.ping, address, 0.3)

        many: list[float | None] = [None] * 64

        async def one(i: int) -> None:
            many[i] = await v4.ping(f"127.0.0.{i + 1}", 0.3)

        out["fds_before"] = len(os.listdir("/proc/self/fd"))
        async with trio.open_nursery() as inner:
            for i in range(64):
                inner.start_soon(one, i)
            await trio.sleep(0.1)
            out["fds_during"] = len(os.listdir("/proc/self/fd"))
        out["many"] = many

        stopper = trio.CancelScope()
        other = Pinger(V4)

        async def run_until_stopped(task_status: trio.TaskStatus[None]) -> None:
            with stopper:
                await other.run(task_status)

        await nursery.start(run_until_stopped)
        nursery.start_soon(_later, 0.1, stopper.cancel)
        out["stopped"] = await _timed(other.ping, "127.0.0.1", 5.0)
        nursery.cancel_scope.cancel()
    return out


async def _later(delay: float, action: Callable[[], object]) -> None:
    await trio.sleep(delay)
    action()


def _near_misses(family: socket.AddressFamily, ident: int, seq: int, payload: bytes) -> list[bytes]:
    reply, request = ECHO_REPLY[family], ECHO_REQUEST[family]
    right = icmp(family, reply, 0, ident, seq, payload)
    misses = [
        icmp(family, reply, 0, ident, seq, bytes(len(payload))),
        icmp(family, reply, 0, ident, seq, payload[:-1]),
        icmp(family, reply, 0, ident, (seq + 1) & 0xFFFF, payload),
        icmp(family, reply, 0, (ident + 1) & 0xFFFF, seq, payload),
        icmp(family, reply, 1, ident, seq, payload),
        icmp(family, request, 0, ident, seq, payload),
        right[:6],
    ]
    if family == V4:
        misses.append(right[:2] + bytes([right[2] ^ 0xFF, right[3]]) + right[4:])
    return misses


async def _responder(family: socket.AddressFamily, mode: Literal["junk", "right"],
                     seen: list[str], task_status: trio.TaskStatus[None]) -> None:  # fmt: skip
    """Answer echo requests on loopback ourselves (the kernel is told not to)."""
    proto = socket.IPPROTO_ICMP if family == V4 else socket.IPPROTO_ICMPV6
    answered: set[tuple[int, int]] = set()
    with trio.socket.socket(family, socket.SOCK_RAW, proto) as sock, \
         trio.socket.socket(family, socket.SOCK_RAW, proto) as elsewhere:  # fmt: skip
        if family == V4:
            await elsewhere.bind(("127.0.0.2", 0))
        task_status.started()
        while True:
            data, source = await sock.recvfrom(2048)
            message = data[(data[0] & 0x0F) * 4 :] if family == V4 else data
            if message[0] != ECHO_REQUEST[family]:
                continue
            ident, seq = struct.unpack_from("!HH", message, 4)
            if (ident, seq) in answered:  # one of our own near misses: a request too
                continue
            answered.add((ident, seq))
            seen.append(source[0])
            right = icmp(family, ECHO_REPLY[family], 0, ident, seq, message[8:])
            if mode == "right":
                for _ in range(2):
                    await sock.sendto(right, source)
                continue
            for miss in _near_misses(family, ident, seq, message[8:]):
                await sock.sendto(miss, source)
            if family == V4:
                await elsewhere.sendto(right, source)  # from 127.0.0.2, to a ping of 127.0.0.1


async def _forged(mode: Literal["junk", "right"]) -> dict[str, Any]:
    _sysctl("net/ipv4/icmp_echo_ignore_all", "1")
    _sysctl("net/ipv6/icmp/echo_ignore_all", "1")
    out: dict[str, Any] = {"requests": []}
    async with trio.open_nursery() as nursery:
        pingers = await _started(nursery, Pinger(V4, kind="raw"), Pinger(V6, kind="raw"))
        for family in (V4, V6):
            await nursery.start(_responder, family, mode, out["requests"])
        for address in ("127.0.0.1", "::1"):
            out[address] = await pingers.ping(address, 0.5)
        nursery.cancel_scope.cancel()
    return out


async def _down() -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        pingers = await _started(nursery, Pinger(V4), Pinger(V6))
        for address in ("127.0.0.1", "::1"):
            out[address] = await _timed(pingers.ping, address, 2.0)
        nursery.cancel_scope.cancel()
    return out


async def _dgram() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, pinger in (("raw_forced", Pinger(V4, kind="raw")), ("no_ping_group", Pinger(V4))):
        try:
            with trio.move_on_after(0.5):  # it should not open at all
                await pinger.run()
        except PermissionError as exc:
            out[key] = str(exc)
    _sysctl("net/ipv4/ping_group_range", f"{os.getgid()} {os.getgid()}")
    async with trio.open_nursery() as nursery:
        v4, v6 = Pinger(V4), Pinger(V6)
        pingers = await _started(nursery, v4, v6)
        out["kinds"] = [v4.kind, v6.kind]
        for address in ("127.0.0.1", "127.0.0.2", "::1"):
            out[address] = await pingers.ping(address, 1.0)
        nursery.cancel_scope.cancel()
    return out


SCENARIOS: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "silent": _silent,
    "junk": lambda: _forged("junk"),
    "right": lambda: _forged("right"),
    "down": _down,
    "dgram": _dgram,
}


async def _bounded(scenario: str) -> dict[str, Any]:
    with trio.fail_after(15):
        return await SCENARIOS[scenario]()


def _main(scenario: str) -> None:
    if scenario != "down":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(trio.run(_bounded, scenario)))


if __name__ == "__main__":
    _main(sys.argv[1])
