"""Tells the configuration audit triggers who is making a change.

On a request that may write (not GET/HEAD/OPTIONS) from a signed-in user, the user's id is
given to the connection until the response is made: on PostgreSQL the session setting
``cc.actor_id``, on SQLite an attribute the connection's ``cc_actor_id()`` function reads
(``privacy.triggers``); the triggers copy it into the access log. Calls authenticated by an
API token are identified by DRF inside the view, after this middleware: their changes are
logged without a user (docs, "Audit log").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.method in SAFE_METHODS or user is None or not user.is_authenticated:
            return self.get_response(request)
        set_actor(user.pk)
        try:
            return self.get_response(request)
        finally:
            with contextlib.suppress(DatabaseError):  # a closed connection forgets it anyway
                set_actor(None)


def set_actor(user_id: int | None) -> None:
    """Name (or forget) the user behind the next changes on this connection."""
    if connection.vendor != "postgresql":
        connection.cc_actor_id = user_id  # type: ignore[attr-defined]
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('cc.actor_id', %s, false)", [str(user_id or "")])
