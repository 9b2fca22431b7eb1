"""Task and instance ids drawn from a seeded generator, for a run that must repeat.

SpiffWorkflow gives every task a random UUID, and the engine every instance; handlers
may derive values from them (a tracking number from an idempotency key), which then
reach the instance's data and its state digests. The history generator
(`artreturns bench --seed-history`) runs its template returns inside `drawn_from(rng)`
so that the same seed makes the same database, hashes included. Nothing else uses it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace


@contextmanager
def drawn_from(rng: random.Random) -> Iterator[None]:
    """While this lasts, new task and instance ids come from `rng`."""
    from SpiffWorkflow import task as spiff_task

    from engine import runner

    def uuid4() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    before_task, before_runner = spiff_task.uuid4, getattr(runner, "uuid")  # noqa: B009
    spiff_task.uuid4 = uuid4
    setattr(runner, "uuid", SimpleNamespace(uuid4=uuid4))  # noqa: B010 - not exported
    try:
        yield
    finally:
        spiff_task.uuid4 = before_task
        setattr(runner, "uuid", before_runner)  # noqa: B010


__all__ = ["drawn_from"]
