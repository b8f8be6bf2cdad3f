"""How the MAN emulator reads paging parameters: offset or page numbers, under any names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "DEFAULT_LIMIT",
    "LimitMode",
    "PageAsk",
    "PagingMode",
    "PagingOptions",
    "check_paging",
    "read_paging",
]

DEFAULT_LIMIT = 10
"""The page size of a request that names none (MANPINT002)."""

LimitMode = Literal["reject", "clamp", "ignore"]
"""What a page size above the cap gets: a 400, the cap, or the size is never read at all."""

PagingMode = Literal["offset", "page"]
"""``?limit=L&offset=O`` or ``?page=P&limit=L`` (under the configured parameter names)."""


class PagingOptions(Protocol):
    """The paging part of the emulator's configuration (`ManEmulatorConfig` has it)."""

    @property
    def paging(self) -> PagingMode: ...
    @property
    def limit_param(self) -> str: ...
    @property
    def offset_param(self) -> str: ...
    @property
    def page_param(self) -> str: ...
    @property
    def first_page(self) -> int: ...
    @property
    def limit_mode(self) -> LimitMode: ...
    @property
    def honour_offset(self) -> bool: ...
    @property
    def max_limit(self) -> int: ...


class PageAsk(NamedTuple):
    """The page a request gets, as the server reads it: the offset and size it serves,
    the page number in page mode, and the message of a 400 (values read so far kept)."""

    offset: int | None
    limit: int | None
    page: int | None = None
    error: str | None = None


def _parse(query: Mapping[str, str], name: str, default: int) -> int | None:
    """The query parameter `name` as a non-negative integer, default if absent, None if bad."""
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def read_paging(query: Mapping[str, str], options: PagingOptions) -> PageAsk:
    """Read the page size and position from `query` the way the configured server does.

    Parameters the server does not know are ignored, as a real server ignores them: in
    page mode an offset is never read, and with `honour_offset` false neither the offset
    nor the page number is. With `limit_mode` "ignore" the size is always `DEFAULT_LIMIT`.
    The position is checked before the size, as the emulator always did.
    """
    limit: int | None
    limit_error: str | None = None
    if options.limit_mode == "ignore":
        limit = DEFAULT_LIMIT
    else:
        limit = _parse(query, options.limit_param, DEFAULT_LIMIT)
        if limit is None:
            limit_error = f"{options.limit_param} must be a non-negative integer"
        elif limit > options.max_limit:
            if options.limit_mode == "clamp":
                limit = options.max_limit
            else:
                limit_error = f"{options.limit_param} must not exceed {options.max_limit}"

    if options.paging == "offset":
        offset = _parse(query, options.offset_param, 0) if options.honour_offset else 0
        if offset is None:
            return PageAsk(
                None, limit, error=f"{options.offset_param} must be a non-negative integer"
            )
        return PageAsk(offset, limit, error=limit_error)

    first = options.first_page
    page = _parse(query, options.page_param, first) if options.honour_offset else first
    if page is None:
        return PageAsk(None, limit, error=f"{options.page_param} must be a non-negative integer")
    if page < first:
        return PageAsk(None, limit, page, f"{options.page_param} must be at least {first}")
    offset = None if limit is None else (page - first) * limit
    return PageAsk(offset, limit, page, limit_error)


def check_paging(options: PagingOptions) -> None:
    """Raise ValueError when the paging options cannot describe a server."""
    if options.limit_mode not in ("reject", "clamp", "ignore"):
        raise ValueError(
            f'limit_mode must be "reject", "clamp" or "ignore", got {options.limit_mode!r}'
        )
    if options.paging not in ("offset", "page"):
        raise ValueError(f'paging must be "offset" or "page", got {options.paging!r}')
    if options.first_page not in (0, 1):
        raise ValueError(f"first_page must be 0 or 1, got {options.first_page!r}")
    position = options.offset_param if options.paging == "offset" else options.page_param
    names = (options.limit_param, position)
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(f"paging parameter names must be distinct and not empty, got {names!r}")
