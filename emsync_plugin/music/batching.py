"""Model calls shared by takes decoded together: their rows in one batch, their caches side by side.

Each take is a coroutine (a Python generator) that yields a :class:`Request` — the tokens the
model must see next with their conditioning, and whether they start a new window (position 0,
the take's cache dropped) — and is sent back the logits of its own rows. :func:`drive` runs the
takes in rounds: takes whose requests have the same shape (new window or not, as many tokens,
as long a cache) go through one model call, their caches one tensor along the batch axis, which
stays as it is from call to call while the same takes keep step (the model writes each call's
keys and values into it in place); a take that finishes drops out. No row attends to another,
so a take's logits do not depend on its batch mates.
"""
from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Entry = tuple[int, float, float, float]  # a token and its conditioning: valence, arousal, offset


@dataclass(eq=False)
class Cache:
    """The keys and values of a batch's rows, preallocated: ``data`` [n_layer, 2 (key, value),
    rows, n_head, capacity, head_dim], of which the first ``length`` positions are filled. A model
    call appends to it in place; ``bound`` is the runner's handle on the buffer (made once)."""

    data: np.ndarray
    length: int = 0
    bound: Any = None

    @property
    def rows(self) -> int:
        return int(self.data.shape[2])

    def take(self, rows: Sequence[int]) -> Cache:
        """A new cache of these rows (the filled positions copied)."""
        data = np.zeros((*self.data.shape[:2], len(rows), *self.data.shape[3:]), self.data.dtype)
        data[:, :, :, :, :self.length] = self.data[:, :, list(rows), :, :self.length]
        return Cache(data, self.length)

    def row(self, r: int) -> Cache:
        """Row ``r`` as a cache of its own sharing this one's memory."""
        return Cache(self.data[:, :, r:r + 1], self.length)


Run = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Cache], np.ndarray]


@dataclass(frozen=True)
class Request:
    """The next model call a take needs: ``entries`` after its cache, or from position 0 (``fresh``)."""

    entries: Sequence[Entry]
    fresh: bool = False


@dataclass
class Take:
    """A take's coroutine and its rows in a batch: 2 with guidance (a neutral-mood row), else 1."""

    coroutine: Generator[Request, np.ndarray, Any]
    rows: int
    request: Request | None = None
    result: Any = None

    def start(self) -> None:
        self._resume(None)

    def send(self, logits: np.ndarray) -> None:
        self._resume(logits)

    def _resume(self, logits: np.ndarray | None) -> None:
        try:
            self.request = self.coroutine.send(logits)  # type: ignore[arg-type]  # None primes it
        except StopIteration as done:
            self.request, self.result = None, done.value


@dataclass
class _Group:
    """Takes whose caches are one tensor, rows in the order of ``takes``."""

    takes: list[Take]
    cache: Cache


def drive(takes: Sequence[Take], run: Run, empty: Callable[[int], Cache],
          after_round: Callable[[], None] | None = None) -> None:
    """Run every take to its end (its ``result``): ``run(ids, valence, arousal, offset, cache)``
    is one model call (the logits; the new entries are appended to ``cache``); ``empty(rows)``
    an empty cache."""
    for take in takes:
        take.start()
    live = [t for t in takes if t.request is not None]
    groups = [_Group(live, empty(sum(t.rows for t in live)))] if live else []
    while groups:
        buckets: dict[tuple[bool, int, int], list[tuple[_Group, int, Take]]] = {}
        for group in groups:
            row = 0
            for take in group.takes:
                req = take.request
                assert req is not None
                key = (req.fresh, len(req.entries), 0 if req.fresh else group.cache.length)
                buckets.setdefault(key, []).append((group, row, take))
                row += take.rows
        groups = []
        for (fresh, _, _), members in buckets.items():
            cache = empty(sum(t.rows for _, _, t in members)) if fresh else _gathered(members)
            logits = run(*_inputs([t for _, _, t in members]), cache)
            going = _answer([t for _, _, t in members], logits, cache)
            if going is not None:
                groups.append(going)
        if after_round is not None:
            after_round()


def _gathered(members: list[tuple[_Group, int, Take]]) -> Cache:
    """The members' caches as one: a group's own when the members are that group, in order
    (no copy), else their rows side by side (all have the same length)."""
    group = members[0][0]
    if len(members) == len(group.takes) and all(g is group and t is u for (g, _, t), u in zip(members, group.takes)):
        return group.cache
    return Cache(np.concatenate([g.cache.data[:, :, r:r + t.rows] for g, r, t in members], axis=2), group.cache.length)


def _inputs(takes: list[Take]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model inputs of one call: each take's tokens on its rows; a guidance row has the
    same tokens and offsets with a neutral mood."""
    ids, val, aro, off = [], [], [], []
    for take in takes:
        assert take.request is not None
        t, v, a, o = zip(*take.request.entries)
        zeros = [0.0] * len(t)
        ids += [t] * take.rows
        val += [v, zeros][:take.rows]
        aro += [a, zeros][:take.rows]
        off += [o] * take.rows
    return (np.asarray(ids, np.int64), np.asarray(val, np.float32), np.asarray(aro, np.float32),
            np.asarray(off, np.float32))


def _answer(takes: list[Take], logits: np.ndarray, cache: Cache) -> _Group | None:
    """Each take gets its rows' logits; those still going keep their rows of the new cache."""
    row, keep, going = 0, list[int](), list[Take]()
    for take in takes:
        take.send(logits[row:row + take.rows])
        if take.request is not None:
            keep.extend(range(row, row + take.rows))
            going.append(take)
        row += take.rows
    if not going:
        return None
    return _Group(going, cache if len(keep) == cache.rows else cache.take(keep))
