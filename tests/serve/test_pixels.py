import threading
import time

import pytest

from omnireid.serve.pixels import PixelBudget, release_free_memory


def holder(budget: PixelBudget, pixels: int, entered: threading.Event, leave: threading.Event):
    def run() -> None:
        with budget.hold(pixels):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def test_the_budget_holds_at_most_its_capacity_first_come_first_served():
    """10 pixels: 6 held; a request for 6 waits; one for 1 that arrives after it waits too
    (it would fit, but would let a stream of small requests starve the large one)."""
    budget = PixelBudget(10)
    events = {name: (threading.Event(), threading.Event()) for name in ("first", "big", "small")}
    threads = [holder(budget, 6, *events["first"])]
    wait_for(events["first"][0].is_set)
    threads.append(holder(budget, 6, *events["big"]))
    wait_for(lambda: budget.waiting == 1)
    threads.append(holder(budget, 1, *events["small"]))
    wait_for(lambda: budget.waiting == 2)
    time.sleep(0.2)
    assert not events["big"][0].is_set() and not events["small"][0].is_set()
    assert budget.used == 6
    events["first"][1].set()  # 6 freed: the big one enters, then the small one beside it
    wait_for(lambda: events["big"][0].is_set() and events["small"][0].is_set())
    assert budget.used == 7 and budget.waiting == 0
    for _, leave in events.values():
        leave.set()
    for t in threads:
        t.join(10)
    assert budget.used == 0
    with pytest.raises(ValueError, match="11 pixels asked of a budget of 10"), budget.hold(11):
        pass


def test_free_memory_is_given_back_where_glibc_is():
    import platform

    expected = platform.libc_ver()[0] == "glibc"
    assert release_free_memory() is expected
