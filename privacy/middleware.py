"""Tells the configuration audit triggers who is making a change.

On a request that may write (not GET/HEAD/OPTIONS) from a signed-in user, the user's id is
given to the connection for the changes the request makes: on PostgreSQL the session setting
``cc.actor_id``, on SQLite an attribute the connection's ``cc_actor_id()`` function reads
(``privacy.triggers``); the triggers copy it into the access log. Calls authenticated by an
API token are identified by DRF inside the view, after this middleware: their changes are
logged without a user (docs, "Audit log").

On PostgreSQL the setting costs a statement, and most requests (an agent's console actions)
change no audited table: it is made just before the request's first statement that may write
an audited table (:class:`ActorOnWrite`), and forgotten after the response only when it was
made. A statement the middleware cannot read (raw SQL other than a plain SELECT, INSERT,
UPDATE or DELETE) counts as one that may write. Statements sent on the raw psycopg connection
(``kernel.pg.execute_binary``) are not seen: none writes an audited table.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

from .triggers import AUDITED

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SET_ACTOR_SQL = "SELECT set_config('cc.actor_id', %s, false)"


class AuditActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.method in SAFE_METHODS or user is None or not user.is_authenticated:
            return self.get_response(request)
        with acting_as(user.pk):
            return self.get_response(request)


@contextlib.contextmanager
def acting_as(user_id: int) -> Iterator[None]:
    """The changes made inside are ``user_id``'s in the audit log: a request's (the middleware
    above), or an action a socket carries (``kernel.audit.acting_as``, registered by
    ``PrivacyConfig.ready``)."""
    if connection.vendor != "postgresql":
        set_actor(user_id)  # an attribute of the connection: nothing to save
        try:
            yield
        finally:
            set_actor(None)
        return
    actor = ActorOnWrite(user_id)
    try:
        with connection.execute_wrapper(actor):
            yield
    finally:
        if actor.made:
            with contextlib.suppress(DatabaseError):  # a closed connection forgets it anyway
                set_actor(None)


def set_actor(user_id: int | None) -> None:
    """Name (or forget) the user behind the next changes on this connection."""
    if connection.vendor != "postgresql":
        connection.cc_actor_id = user_id  # type: ignore[attr-defined]
        return
    with connection.cursor() as cursor:
        cursor.execute(SET_ACTOR_SQL, [str(user_id or "")])


# The first word of a statement; then, in the statement in capitals, each INSERT INTO, UPDATE,
# DELETE FROM (a data-modifying WITH has several) and the name after it. The UPDATE of "FOR
# UPDATE", "FOR NO KEY UPDATE" and "DO UPDATE" (a lock, an upsert) writes nothing. A verb
# without a plain name after it (a qualified name, ONLY, a comment) or a MERGE makes the
# statement one not read here. (Case-insensitive patterns cost four times as much.)
_KEYWORD = re.compile(r"\s*([A-Za-z]+)")
_VERBS = re.compile(r'\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE)\b(?:\s+("?)(\w+)\2(\.?))?')
_NOT_A_WRITE = ("FOR ", "KEY ", "DO ")
_READS = frozenset({"SELECT", "SAVEPOINT", "RELEASE"})
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "WITH"})


def may_write_audited(sql: Any) -> bool:
    """``sql`` may change a table the audit triggers watch: anything but a SELECT (or a
    savepoint), and INSERT, UPDATE, DELETE and WITH statements that write one of them."""
    if not isinstance(sql, str):
        return True  # a psycopg sql.Composed...: not read here
    keyword = _KEYWORD.match(sql)
    if keyword is None:
        return True
    end = sql.find(";")
    if end != -1 and sql[end + 1 :].strip():
        return True  # several statements
    word = keyword.group(1).upper()
    if word in _READS:
        return False
    if word not in _WRITES:
        return True
    upper = sql.upper()
    written = 0
    for match in _VERBS.finditer(upper):
        verb, _quote, name, qualified = match.groups()
        if verb == "UPDATE" and upper[max(0, match.start() - 4) : match.start()].endswith(
            _NOT_A_WRITE
        ):
            continue
        if verb == "MERGE" or not name or qualified or name == "ONLY":
            return True
        if name.lower() in AUDITED:
            return True
        written += 1
    return written == 0 and word != "WITH"  # a write whose table was not found: unknown


class ActorOnWrite:
    """A Django ``execute_wrapper``: before a statement that may write an audited table, names
    the user on the connection, unless it already is (a setting made inside a transaction is
    made again: a rollback undoes it)."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.made = False
        self._kept_on: Any = None  # the raw connection the setting was committed on

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        db = context["connection"]
        if (self._kept_on is None or self._kept_on is not db.connection) and may_write_audited(sql):
            with db.cursor() as cursor:  # a SELECT: this wrapper lets it through
                cursor.execute(SET_ACTOR_SQL, [str(self.user_id)])
            self.made = True
            # Outside a transaction the setting is committed; inside, a rollback may undo it.
            self._kept_on = db.connection if db.get_autocommit() else None
        return execute(sql, params, many, context)
