"""Timers: run something later (``submit_after``) or again and again (``every``).

Lesson: ``threading.Timer(n, fn)`` starts a thread that calls ``fn`` after n
seconds and can be cancelled before then. With a pool, one scheduler thread per
pool does the waiting and the pool's workers do the work, so a thousand timers
do not cost a thousand threads, each delayed call returns a Future, and a
repeating timer keeps to its beat without drifting.
"""

from __future__ import annotations

import time

import anypool


def hello(name: str) -> str:
    return f"hello, {name}"


def main() -> None:
    with anypool.Pool("thread", 2) as pool:
        start = time.monotonic()
        later = pool.submit_after(0.3, hello, "world")
        never = pool.submit_after(0.2, hello, "nobody")
        assert never.cancel()  # like Timer.cancel(): it will not run
        greeting = later.result(timeout=10)
        waited = time.monotonic() - start
        print(f"{greeting!r} after {waited:.2f} s")
        assert greeting == "hello, world"
        assert waited >= 0.3
        assert never.cancelled()

        beats: list[float] = []
        start = time.monotonic()
        metronome = pool.every(0.1, lambda: beats.append(time.monotonic() - start))
        time.sleep(0.65)
        metronome.cancel()
        metronome.wait(timeout=5)
        print("beats at", " ".join(f"{b:.2f}" for b in beats), "s")
        assert 5 <= len(beats) <= 7
        for k, beat in enumerate(beats, start=1):
            assert beat >= k * 0.1 - 0.005  # never early
            assert beat < k * 0.1 + 0.1  # and late only by this run's own delay, not summed


if __name__ == "__main__":
    main()
