"""Addresses of the probes: IP literals only, learnt once (every round uses the same ones)."""

from __future__ import annotations

import socket

import pytest

from carpd_py.probes._addr import family_of, resolve, same_host


def test_a_literal_is_resolved_once_and_then_remembered() -> None:
    first = resolve("192.0.2.7", 443)
    assert first == (socket.AF_INET, ("192.0.2.7", 443))
    assert resolve("192.0.2.7", 443) is first  # an idle round parses nothing again
    assert resolve("2001:db8::7") == (socket.AF_INET6, ("2001:db8::7", 0, 0, 0))
    assert family_of("2001:db8::7") is socket.AF_INET6


def test_a_scoped_address_is_resolved_every_time() -> None:
    # The interface its %scope names may come back with another index: never remembered.
    assert resolve("fe80::1%lo")[1][3] == socket.if_nametoindex("lo")
    assert resolve("fe80::1%lo") is not resolve("fe80::1%lo")
    with pytest.raises(OSError):
        resolve("fe80::1%nosuchif0")


def test_names_are_refused_and_not_remembered() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="not an IP address"):
            family_of("localhost")
        with pytest.raises(ValueError, match="not an IP address"):
            resolve("localhost")


def test_same_host() -> None:
    assert same_host("127.0.0.1", "127.0.0.1")
    assert same_host("2001:DB8::1", "2001:db8:0::1")
    assert same_host("fe80::1%em0", "fe80::1")
    assert not same_host("127.0.0.1", "127.0.0.2")
    assert not same_host("localhost", "127.0.0.1")
