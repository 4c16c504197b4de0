"""A condition variable: workers sleep until another one changes the state and notifies.

Lesson: ``Condition`` pairs a lock with a wait list. A worker holding the lock
``wait()``s (releasing the lock while asleep) until someone ``notify()``s; the
woken worker re-checks the state, because being woken is not the same as the
state being right. Here two workers play ping-pong: each waits for its turn,
plays, hands the turn over and notifies. Then the same on worker processes.
"""

from __future__ import annotations

import anypool

ROUNDS = 50


def player(name: str, other: str, cond, state: dict[str, object], log: list[str]) -> int:
    for _ in range(ROUNDS):
        with cond:
            cond.wait_for(lambda: state["turn"] == name, timeout=10)
            assert state["turn"] == name, f"{name} timed out waiting for its turn"
            log.append(name)
            state["turn"] = other
            cond.notify_all()
    return ROUNDS


def process_player(me: int, cond, board, rounds: int) -> int:
    # across processes the shared state is a queue holding the next turn
    for _ in range(rounds):
        with cond:
            assert cond.wait_for(lambda: peek(board) == me, timeout=10)
            board.get()
            board.put(1 - me)
            cond.notify_all()
    return rounds


def peek(board) -> int:
    turn = board.get()
    board.put(turn)
    return int(turn)


def main() -> None:
    with anypool.Pool("thread", 2) as pool:
        cond, state, log = pool.Condition(), {"turn": "ping"}, []
        futures = [
            pool.submit(player, "pong", "ping", cond, state, log),
            pool.submit(player, "ping", "pong", cond, state, log),
        ]
        assert [f.result(timeout=30) for f in futures] == [ROUNDS, ROUNDS]
    assert log == ["ping", "pong"] * ROUNDS
    print("threads:", " ".join(log[:6]), "...", f"({len(log)} strictly alternating turns)")

    with anypool.Pool("process", 2) as pool:
        cond, board = pool.Condition(), pool.Queue()
        board.put(0)
        futures = [pool.submit(process_player, me, cond, board, 10) for me in (1, 0)]
        assert [f.result(timeout=30) for f in futures] == [10, 10]
        assert board.get() == 0  # 20 turns handed over: back to the first player
    print("processes: 20 turns handed over through a Condition shared by two processes")


if __name__ == "__main__":
    main()
