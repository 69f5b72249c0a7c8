"""Statements that carry whole columns as arrays, bound in binary on the PostgreSQL server.

Django's psycopg cursors bind parameters client-side: a list becomes an array literal quoted
element by element into the SQL text, and the ORM's ``field__in=[...]`` prepares one
placeholder per value in Python. For statements over thousands of rows (a routing chunk, the
console server's heartbeat batch) that work, done while holding the interpreter, cost more
than the statement itself. A plain psycopg cursor on Django's connection binds ``%b``
parameters on the server instead, in binary: one parameter per column whatever its length.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


def execute_binary(sql: str, params: list[Any]) -> psycopg.Cursor[Any]:
    """Run ``sql`` (``%b`` placeholders) on Django's connection; the caller closes the cursor.

    It joins the caller's transaction, if any, like any other statement on that connection.
    """
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    cursor.execute(sql, params)
    return cursor
