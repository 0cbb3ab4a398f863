"""TCP probes against real sockets on loopback only."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import trio

from carpd_py.probes import tcp_probe


@pytest.fixture
async def listener() -> AsyncIterator[trio.SocketListener]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listeners[0]:
        yield listeners[0]


def port_of(listener: trio.SocketListener) -> int:
    port: int = listener.socket.getsockname()[1]
    return port


def closed_port(family: socket.AddressFamily, host: str) -> socket.socket:
    """A socket bound to a free port that does not listen: a connect there is refused."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock


async def test_listener_answers(listener: trio.SocketListener) -> None:
    with trio.fail_after(5):
        rtt = await tcp_probe("127.0.0.1", port_of(listener), 2.0)
    assert rtt is not None
    assert 0 <= rtt < 2.0


async def test_ipv6_listener_answers() -> None:
    listeners = await trio.open_tcp_listeners(0, host="::1")
    async with listeners[0] as listener:
        with trio.fail_after(5):
            assert await tcp_probe("::1", port_of(listener), 2.0) is not None


async def test_the_probe_closes_its_socket_at_once(listener: trio.SocketListener) -> None:
    with trio.fail_after(5):
        assert await tcp_probe("127.0.0.1", port_of(listener), 2.0) is not None
        stream = await listener.accept()
        async with stream:
            assert await stream.receive_some() == b""  # end of stream: the probe has closed


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
async def test_refused_is_none_and_fast(family: socket.AddressFamily, host: str) -> None:
    with closed_port(family, host) as sock, trio.fail_after(5):
        start = trio.current_time()
        assert await tcp_probe(host, sock.getsockname()[1], 2.0) is None
        assert trio.current_time() - start < 0.5


async def test_a_handshake_that_never_completes_is_none_at_the_timeout() -> None:
    # A listener that never accepts, with a backlog of 0: once its accept queue is full the
    # kernel drops further SYNs, so the next connect hangs (on loopback, no filter needed).
    with socket.socket() as server, trio.fail_after(10):
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers: list[trio.socket.SocketType] = []
        try:
            for _ in range(8):  # Linux queues backlog + 1; stop at the first that hangs
                filler = trio.socket.socket()
                fillers.append(filler)
                with trio.move_on_after(0.3) as hung:
                    await filler.connect(("127.0.0.1", port))
                if hung.cancelled_caught:
                    break
            else:
                pytest.fail("the accept queue never filled up: connect did not hang")
            start = trio.current_time()
            assert await tcp_probe("127.0.0.1", port, 0.3) is None
            assert 0.3 <= trio.current_time() - start < 0.6
        finally:
            for filler in fillers:
                filler.close()


async def test_only_ip_literals() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        await tcp_probe("localhost", 22, 1.0)
