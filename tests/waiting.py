"""wait_until: the tests' one way to wait for something another thread or process does (imported as `waiting`:
pytest puts this folder on sys.path)."""
import time


def wait_until(condition, timeout: float = 60.0) -> None:
    """Poll `condition` every 20 ms until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
