"""Group rounds: every target at once, min_up, and a hang that never stalls the round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import FrozenInstanceError, replace

import pytest
import trio

from carpd_py.config import UpstreamConfig
from carpd_py.probes import (
    ROUND_MARGIN,
    BatchProbe,
    GroupResult,
    TargetProbe,
    TargetResult,
    probe_group,
)

TARGETS = ("127.0.0.1", "127.0.0.2", "::1")


def icmp(
    min_up: int = 1, timeout: float = 0.5, targets: tuple[str, ...] = TARGETS
) -> UpstreamConfig:
    return UpstreamConfig("isp", "icmp", targets, min_up=min_up, timeout=timeout)


def fake_ping(answers: dict[str, float]) -> TargetProbe:
    """A ping that answers after answers[address] seconds; others never answer, whatever the
    timeout says (a probe that ignores its own deadline)."""

    async def ping(address: str, timeout: float) -> float | None:
        if address not in answers:
            await trio.sleep_forever()
        await trio.sleep(answers[address])
        return answers[address]

    return ping


async def never(address: str, timeout: float) -> float | None:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def instant(address: str, timeout: float) -> float | None:
    return 0.001


async def test_min_up_decides() -> None:
    async def ping(address: str, timeout: float) -> float | None:
        return 0.01 if address != "127.0.0.2" else None

    with trio.fail_after(5):
        good = await probe_group(icmp(min_up=2), ping)
        bad = await probe_group(icmp(min_up=3), ping)
    assert good.good
    assert not bad.good
    assert (good.answered, bad.answered) == (2, 2)
    assert good.targets == (
        TargetResult("127.0.0.1", 0.01),
        TargetResult("127.0.0.2", None),
        TargetResult("::1", 0.01),
    )
    assert [t.answered for t in good.targets] == [True, False, True]
    assert (good.name, good.method, good.min_up, good.command) == ("isp", "icmp", 2, None)


async def test_targets_are_probed_concurrently() -> None:
    async def slow(address: str, timeout: float) -> float | None:
        await trio.sleep(0.3)
        return 0.3

    many = tuple(f"127.0.0.{i}" for i in range(1, 65))
    with trio.fail_after(5):
        result = await probe_group(icmp(timeout=1.0, targets=many), slow)
    assert result.answered == 64
    assert result.duration < 0.6  # not 64 * 0.3


async def test_a_hang_is_a_failure_never_a_stall() -> None:
    with trio.fail_after(5):
        start = trio.current_time()
        result = await probe_group(icmp(timeout=0.3), never)
        took = trio.current_time() - start
    assert not result.good
    assert result.answered == 0
    assert all(t.rtt is None for t in result.targets)
    assert 0.3 <= took <= 0.3 + ROUND_MARGIN
    assert result.duration == pytest.approx(took, abs=0.01)


async def test_a_late_answer_does_not_count() -> None:
    ping = fake_ping({"127.0.0.1": 0.01, "127.0.0.2": 0.6})
    with trio.fail_after(5):
        result = await probe_group(icmp(timeout=0.3), ping)
    assert [t.rtt for t in result.targets] == [0.01, None, None]
    assert result.good
    assert result.duration < 0.3 + ROUND_MARGIN


async def test_the_result_is_frozen() -> None:
    result = await probe_group(icmp(), instant)
    assert isinstance(result, GroupResult)
    with pytest.raises(FrozenInstanceError):
        result.good = False  # type: ignore[misc]


async def test_icmp_needs_a_ping_function() -> None:
    with pytest.raises(ValueError, match="needs a ping function"):
        await probe_group(icmp())


async def test_tcp_on_loopback() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listeners[0] as listener:
        port = listener.socket.getsockname()[1]
        # 127.0.0.2 is local too, but nothing listens there: refused.
        up = UpstreamConfig("web", "tcp", ("127.0.0.1", "127.0.0.2"), port=port, timeout=1.0)
        with trio.fail_after(5):
            one = await probe_group(up)
            two = await probe_group(replace(up, min_up=2))
    assert one.good
    assert [t.answered for t in one.targets] == [True, False]
    assert not two.good
    assert one.duration < 0.5  # refused is an answer of sorts: no waiting for the timeout


async def test_tcp_needs_a_port() -> None:
    with pytest.raises(ValueError, match="needs a port"):
        await probe_group(UpstreamConfig("web", "tcp", ("127.0.0.1",)))


@pytest.mark.parametrize(
    ("command", "good", "summary"),
    [
        (("/bin/sh", "-c", "exit 0"), True, "exit 0"),
        (("/bin/sh", "-c", "echo no route >&2; exit 1"), False, "exit 1: no route"),
        (("/bin/sleep", "30"), False, "/bin/sleep: no exit within 0.3s, process group killed"),
    ],
)
async def test_exec(command: tuple[str, ...], good: bool, summary: str) -> None:
    with trio.fail_after(5):
        result = await probe_group(UpstreamConfig("vpn", "exec", command=command, timeout=0.3))
    assert result.good is good
    assert result.answered == int(good)
    assert result.targets == ()
    assert result.command is not None
    assert result.command.summary == summary
    assert result.duration < 0.3 + ROUND_MARGIN


def fake_ping_all(answers: dict[str, float], calls: list[tuple[str, ...]]) -> BatchProbe:
    """A batch ping: each address answers after answers[address] (None if absent), all at
    once, the call returning when the last answer is in or at its timeout."""

    async def ping_all(addresses: Sequence[str], timeout: float) -> list[float | None]:
        calls.append(tuple(addresses))
        waits = [answers[a] for a in addresses if a in answers]
        await trio.sleep(timeout if len(waits) < len(addresses) else max(waits, default=0))
        return [answers.get(a) for a in addresses]

    return ping_all


async def test_icmp_with_a_batch_ping_sends_once_per_round_and_judges_the_same() -> None:
    calls: list[tuple[str, ...]] = []
    ping_all = fake_ping_all({"127.0.0.1": 0.01, "::1": 0.02}, calls)
    with trio.fail_after(5):
        result = await probe_group(icmp(min_up=2), ping_all=ping_all)
        single = await probe_group(icmp(min_up=2), fake_ping({"127.0.0.1": 0.01, "::1": 0.02}))
    assert calls == [TARGETS]  # one call for the round, the targets in config order
    assert result.good
    assert (result.answered, result.targets) == (single.answered, single.targets)
    assert [t.rtt for t in result.targets] == [0.01, None, 0.02]
    assert 0.5 <= result.duration < 0.5 + ROUND_MARGIN  # the silent target's timeout


async def test_a_hanging_batch_ping_is_a_failed_round_never_a_stall() -> None:
    async def hang(addresses: Sequence[str], timeout: float) -> list[float | None]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with trio.fail_after(5):
        result = await probe_group(icmp(timeout=0.2), ping_all=hang)
    assert not result.good
    assert result.answered == 0
    assert result.duration < 0.2 + ROUND_MARGIN + 0.1
