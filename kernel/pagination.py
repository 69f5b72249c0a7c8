"""The API's pagination: DRF's ``?limit=&offset=``, bounded so that no value reaches the
database as an out-of-range number (a 500) instead of a page."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_LIMIT = 1000
# Far beyond any real list, well within PostgreSQL's bigint.
MAX_OFFSET = 10**12


class Pagination(LimitOffsetPagination):
    """``limit`` is at most 1000 (50 by default); an ``offset`` past the end is an empty page.
    Values that are not numbers fall back to the defaults, as in DRF."""

    max_limit = MAX_LIMIT

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
