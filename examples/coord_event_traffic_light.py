"""An Event as a traffic light: one worker switches it, the cars wait on it.

Lesson: an Event is a flag with a waiting room. ``set()`` (green) lets every
waiter through, ``clear()`` (red) makes ``wait()`` block again, ``is_set()``
looks without waiting. The light and the cars run as tasks of one process pool:
the Event crosses process boundaries as a plain task argument.
"""

from __future__ import annotations

import time

import anypool

GREEN_S, RED_S, CYCLES = 0.15, 0.15, 4


def traffic_light(light, log) -> int:
    """Green, then red, CYCLES times; each green phase is logged as (start, end) times."""
    for _ in range(CYCLES):
        turned_green = time.monotonic()  # taken before set(): the phase lies inside
        light.set()
        time.sleep(GREEN_S)
        light.clear()
        log.put(("green", turned_green, time.monotonic()))  # end taken after clear()
        time.sleep(RED_S)
    log.put(("green", time.monotonic(), float("inf")))
    light.set()  # leave it green so every car can finish
    return CYCLES


def car(name: str, light, log, trips: int) -> int:
    stopped = 0
    for _ in range(trips):
        before = time.monotonic()
        if not light.is_set():
            stopped += 1
            assert light.wait(timeout=10), "the light never turned green"
        # the light was green at some moment between these two times
        log.put((name, before, time.monotonic()))
        time.sleep(0.05)  # drive one block
    return stopped


def main() -> None:
    with anypool.Pool("process", 3) as pool:
        light, log = pool.Event(), pool.Queue()
        lighter = pool.submit(traffic_light, light, log)
        time.sleep(0.05)  # the light comes on first
        cars = [pool.submit(car, name, light, log, 12) for name in ("mini", "bus")]
        stops = [c.result(timeout=30) for c in cars]
        assert lighter.result(timeout=30) == CYCLES
        events = []
        while not log.empty():  # read it before the pool (and its queue) shut down
            events.append(log.get())
    print(f"the cars stopped at red {stops} times and completed all trips")
    assert sum(stops) > 0, "with 4 red phases, some car must have waited"
    greens = [(start, end) for what, start, end in events if what == "green"]
    trips = [(start, end) for what, start, end in events if what != "green"]
    assert len(trips) == 24
    for seen_from, seen_to in trips:
        assert any(start <= seen_to and seen_from <= end for start, end in greens)
    print(f"all {len(trips)} trips started on green")


if __name__ == "__main__":
    main()
