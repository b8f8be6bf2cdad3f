"""The materialised record order of a mutated `Dataset`: ascending ids, new ids in between."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable

__all__ = ["IdOrder", "generated_id", "generated_index"]

_TOP = 9999  # groups have four digits


def generated_id(index: int) -> str:
    """The id of generated record `index`: "C0000042"."""
    return f"C{index:07d}"


def generated_index(customer_id: str) -> int | None:
    """The generated index behind "C0000042" (42), None for any other id."""
    digits = customer_id[1:]
    if customer_id[:1] != "C" or not (digits.isascii() and digits.isdigit()):
        return None
    index = int(digits)
    return index if generated_id(index) == customer_id else None


def _key(customer_id: str) -> tuple[int, ...]:
    """ "C0000005-0001" -> (5, 1); "C-9999" -> (-1, 9999)."""
    root, *groups = customer_id.split("-")
    return (int(root[1:]) if len(root) > 1 else -1, *map(int, groups))


def _text(key: tuple[int, ...]) -> str:
    root = "C" if key[0] < 0 else generated_id(key[0])
    return "-".join([root, *(f"{group:04d}" for group in key[1:])])


class IdOrder:
    """The current ids in ascending order, with room made for new ones.

    A new id extends its predecessor's: after "C0000005" comes "C0000005-5000", after
    that one "C0000005-5001", between the two "C0000005-4999"; before every id
    "C-9999" ('-' sorts before the digits). Where a level is full the id goes one
    deeper ("C0000005-4999-5000"). Ids match [A-Za-z0-9-], stay short under random
    inserts (deep only after thousands of inserts at one spot) and are never reused.
    """

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._issued: set[str] = set()

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, customer_id: str) -> int:
        """The position of `customer_id`; raises KeyError if absent."""
        index = bisect.bisect_left(self.ids, customer_id)
        if index == len(self.ids) or self.ids[index] != customer_id:
            raise KeyError(customer_id)
        return index

    def insert(self, position: int) -> str:
        """Put a new id at `position` (0..len) and return it."""
        ids = self.ids
        if not 0 <= position <= len(ids):
            raise IndexError(f"position {position} out of range (size {len(ids)})")
        low = ids[position - 1] if position > 0 else None
        high = ids[position] if position < len(ids) else None
        customer_id = self._between(low, high)
        ids.insert(position, customer_id)
        self._issued.add(customer_id)
        return customer_id

    def delete(self, customer_id: str) -> None:
        """Remove `customer_id`; raises KeyError if absent."""
        del self.ids[self.index_of(customer_id)]

    def _between(self, low: str | None, high: str | None) -> str:
        """A new id sorting strictly between `low` and `high` (None: no bound there).

        Ids read as tuples (root, group, ...) sort like their strings: "C" is root -1
        and a shorter prefix sorts first. The shallowest level with room wins. Next to
        `low` numbers count up from it (appending after the newest id stays shallow);
        under a bound they count down from it (so does inserting again and again
        right after one id).
        """
        lows = _key(low) if low is not None else (-1,)
        highs = _key(high) if high is not None else None
        depth = 1
        while True:
            prefix = (lows + (0,) * depth)[:depth]
            start = (lows[depth] if depth < len(lows) else 0) + 1
            stop, free = _TOP, True
            if highs is not None and highs[:depth] == prefix:
                stop = highs[depth] if len(highs) > depth + 1 else highs[depth] - 1
                free = False
            numbers: Iterable[int]
            if low is not None and depth == len(lows) and free:  # a first child: leave room
                numbers = itertools.chain(range(5000, _TOP + 1), range(1, 5000))
            elif low is not None and depth < len(lows):
                numbers = range(start, stop + 1)
            else:
                numbers = range(stop, start - 1, -1)
            for number in numbers:
                candidate = _text((*prefix, number))
                if candidate not in self._issued:
                    return candidate
            depth += 1
