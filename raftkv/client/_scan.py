"""Bookkeeping of a paged scan, shared by the async and the blocking iterators.

Rules: the caller's ``limit`` bounds the whole scan (not a page); each page request asks for at
most what is still wanted; a page that claims "more" must move ``next_start`` forward, or the scan
stops with ServerError instead of looping forever.
"""

from __future__ import annotations

from raftkv.client.types import BytesLike, ScanPage, to_bytes
from raftkv.errors import ServerError

__all__ = ["ScanState"]


class ScanState:
    """Bookkeeping of a paged scan: the overall limit, the page size and where to continue."""

    def __init__(self, limit: int | None, page_size: int, start: BytesLike | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        if page_size < 0:
            raise ValueError("page_size must be >= 0")
        self.remaining = limit
        self.page_size = page_size
        self.start: bytes | None = None if start is None else to_bytes(start, "start")
        self.finished = limit == 0

    def next_limit(self) -> int | None:
        """The limit for the next page request, or None when the scan is over."""
        if self.finished:
            return None
        if self.remaining is None:
            return self.page_size
        return min(self.remaining, self.page_size) if self.page_size else self.remaining

    def take(self, page: ScanPage) -> list[tuple[bytes, bytes]]:
        items = list(page.items)
        if self.remaining is not None:
            items = items[: self.remaining]
            self.remaining -= len(items)
        if not page.more or self.remaining == 0:
            self.finished = True
        elif not page.next_start or page.next_start == self.start:
            # A server bug would otherwise make us loop forever on the same page.
            raise ServerError("scan page says 'more' but does not move forward")
        else:
            self.start = page.next_start
        return items
