"""A program that the Ctrl-C and parent-death tests run and then signal.

    python ctrl_c_target.py API MODE [START_METHOD]

API: pool (process backend), thread (thread backend), ppe (anypool.ProcessPoolExecutor),
tpe (anypool.ThreadPoolExecutor), oneshot (``anypool.map``, which owns its pool).

MODE, where the main thread waits when the signal comes: map, result, shutdown, join, or
exit_hook (no ``with`` block: result() on a pool that is never shut down, so only the
interpreter-exit hook can clean up). It prints READY once two long tasks run, then waits.
Special modes: ``starting`` prints READY at once, while the workers still start up;
``no_pdeathsig`` tasks turn PR_SET_PDEATHSIG off first (parent-death tests); ``finish``
ends the program with the tasks still running, so the Ctrl-C comes while the
interpreter-exit hook waits for them.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading

from faultlib import mark_and_sleep, wait_for_started, without_pdeathsig_mark_and_sleep

import anypool

WORKERS = 2


def make(api: str, start_method: str | None) -> object:
    if api == "pool":
        return anypool.Pool("process", WORKERS, start_method=start_method)
    if api == "thread":
        return anypool.Pool("thread", WORKERS)
    if api == "ppe":
        import multiprocessing

        return anypool.ProcessPoolExecutor(WORKERS, multiprocessing.get_context(start_method))
    return anypool.ThreadPoolExecutor(WORKERS)


def ready() -> None:
    wait_for_started(WORKERS)
    print("READY", flush=True)


def wait_in(pool: object, mode: str) -> None:
    if mode == "map":
        results = pool.map(mark_and_sleep, range(100))  # type: ignore[attr-defined]
        next(results)
    elif mode == "join":
        for i in range(4):
            pool.submit(mark_and_sleep, i)  # type: ignore[attr-defined]
        ready()
        pool.join()  # type: ignore[attr-defined]
    elif mode == "starting":  # Ctrl-C while the workers are still starting up
        futures = [pool.submit(mark_and_sleep, i) for i in range(8)]  # type: ignore[attr-defined]
        print("READY", flush=True)
        futures[0].result()
    elif mode == "shutdown":
        for i in range(4):
            pool.submit(mark_and_sleep, i)  # type: ignore[attr-defined]
        ready()
        pool.shutdown()  # type: ignore[attr-defined]
    else:
        task = without_pdeathsig_mark_and_sleep if mode == "no_pdeathsig" else mark_and_sleep
        futures = [pool.submit(task, i) for i in range(4)]  # type: ignore[attr-defined]
        ready()
        futures[0].result()


def main() -> None:
    # the test sends SIGUSR1 to a program that did not exit, to see where it hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    api, mode = sys.argv[1], sys.argv[2]
    start_method = sys.argv[3] if len(sys.argv) > 3 else "forkserver"
    if mode == "map":
        threading.Thread(target=ready, daemon=True).start()
    if api == "oneshot":  # anypool.map owns its pool
        for _ in anypool.map(mark_and_sleep, range(100), workers=WORKERS):
            pass
        return
    pool = make(api, start_method)
    if mode == "exit_hook":
        wait_in(pool, "result")
    elif mode == "finish":  # the program ends with work pending: the exit hook waits for it
        for i in range(4):
            pool.submit(mark_and_sleep, i)  # type: ignore[attr-defined]
        ready()
    else:
        with pool:  # type: ignore[attr-defined]
            wait_in(pool, mode)


if __name__ == "__main__":
    main()
