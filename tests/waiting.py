"""Wait on a condition with a deadline: never a fixed sleep (a loaded machine is slow)."""

import time


def wait_for(condition, timeout: float = 30.0, what: str = "condition", every: float = 0.01):
    """Poll `condition` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
