"""`Ticker`: advance a simulated world continuously, for whoever waits for its events.

The world is evaluated lazily: a timer that ran out changes nothing until someone reads the
world. A test, the demo or a routing-socket feed that waits for events (rather than polling
ifconfig) runs a Ticker, which calls `World.advance()` every `interval` seconds in a thread
and hands every new event of the log (those the timers made and those commands made), with
their simulated times, to `on_events`, oldest first.

    with Ticker(world, on_events=queue.put):
        ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from .events import SimEvent
from .world import World

INTERVAL = 0.05


class Ticker:
    def __init__(
        self,
        world: World,
        *,
        interval: float = INTERVAL,
        on_events: Callable[[list[SimEvent]], None] | None = None,
    ) -> None:
        self.world = world
        self.interval = interval
        self.on_events = on_events
        self.error: BaseException | None = None  # what stopped the thread, if anything did
        self.offset = 0  # where in the event log the next batch starts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, from_now: bool = True) -> Ticker:
        """Start the thread; with `from_now`, only events logged from now on are handed on."""
        if from_now:
            self.offset = self.world.events_from(0)[1]
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="carpd-sim-ticker", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.world.advance()
                events, self.offset = self.world.events_from(self.offset)
            except FileNotFoundError:
                return  # the world was removed under us: nothing left to advance
            except Exception as exc:
                self.error = exc
                return
            if events and self.on_events is not None:
                self.on_events(events)

    def __enter__(self) -> Ticker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
