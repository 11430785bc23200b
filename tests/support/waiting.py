"""Waiting on conditions instead of sleeping.

A fixed sleep is either too short on a loaded machine or wastes time on an idle one.
These helpers poll a condition and return as soon as it holds; the ceilings are only
there so that a broken test ends, and are generous on purpose (the suite runs on small
shared machines, beside other suites).
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

# How long a process (Prometheus, Alertmanager, a remediator, an app, redis-server) may
# take to answer after it was started.
STARTUP = 120.0
# How long `pitwatch demo` may take to start the whole stack, one component after another.
STACK_STARTUP = 300.0
# How long something the test set in motion may take to happen (an action to run, a
# file to appear, a replica to catch up).
EVENTUALLY = 60.0


def wait_until(predicate: Callable[[], T], timeout: float = EVENTUALLY, what: str = "condition",
               interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises TimeoutError naming ``what`` after ``timeout`` seconds. Exceptions of the
    predicate propagate (a process that died is a failure, not something to wait out).
    """
    started = time.monotonic()
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def holds(predicate: Callable[[], object], seconds: float, what: str = "condition",
          interval: float = 0.1) -> None:
    """Assert that ``predicate`` stays true for ``seconds``: for "nothing else happens".

    The window is the thing being tested (re-sends arriving, a second run starting), so
    it is a fixed length; it fails as soon as the predicate turns false.
    """
    end = time.monotonic() + seconds
    while True:
        assert predicate(), f"{what} stopped holding"
        if time.monotonic() >= end:
            return
        time.sleep(interval)
