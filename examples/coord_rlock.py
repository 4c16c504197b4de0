"""A re-entrant lock: the thread that holds ``pool.RLock()`` may take it again.

Lesson: a method that takes a lock and then calls another method that takes the
same lock deadlocks with a plain Lock, because the holder waits for itself. An
RLock counts how often its owner acquired it and frees it after as many releases.
A second lesson rides along: never wait for one lock while holding another that a
different thread may hold while waiting for yours (see ``move_to``).
"""

from __future__ import annotations

import anypool


class Account:
    def __init__(self, pool: anypool.Pool, balance: int) -> None:
        self.balance = balance
        self.lock = pool.RLock()

    def deposit(self, amount: int) -> None:
        with self.lock:
            self.balance += amount

    def withdraw(self, amount: int) -> None:
        with self.lock:
            if amount > self.balance:
                raise ValueError("insufficient funds")
            self.balance -= amount

    def move_to(self, other: Account, amount: int) -> None:
        # takes self.lock, then withdraw() takes it again: fine for an RLock
        with self.lock:
            self.withdraw(amount)
        # deposit only once our lock is released: holding one account's lock while taking
        # the other's deadlocks against a transfer the other way (a.move_to(b) holds a and
        # waits for b while b.move_to(a) holds b and waits for a)
        other.deposit(amount)


def main() -> None:
    with anypool.Pool("thread", 4) as pool:
        a, b = Account(pool, 1_000), Account(pool, 1_000)
        futures = [pool.submit(a.move_to, b, 1) for _ in range(300)]
        futures += [pool.submit(b.move_to, a, 2) for _ in range(100)]
        for future in futures:
            future.result(timeout=30)
        print(f"a={a.balance} b={b.balance}")
        assert (a.balance, b.balance) == (1_000 - 300 + 200, 1_000 + 300 - 200)

        # the same nesting with a plain Lock: the second acquire can never succeed
        plain = pool.Lock()
        with plain:
            assert plain.acquire(timeout=0.1) is False
        reentrant = pool.RLock()
        with reentrant, reentrant:
            assert reentrant.acquire(timeout=0.1) is True
            reentrant.release()
    print("an RLock may be taken again by its holder; a Lock may not")


if __name__ == "__main__":
    main()
