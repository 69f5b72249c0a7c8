"""The database triggers of the access log (docs/quality-and-privacy.md, "Audit log").

Configuration changes are written to ``privacy_accesslog`` by triggers on the configuration
tables, and the log refuses UPDATE and DELETE (DELETE only inside the retention purge).
Triggers, not model signals: ``QuerySet.update()``, ``bulk_create`` and raw SQL bypass signals,
not triggers.

- PostgreSQL: one PL/pgSQL function; migrations call ``install_postgresql`` (0003 and any later
  migration that changes ``AUDITED``). The user comes from the session setting ``cc.actor_id``.
  The log's append-only trigger is migration 0002's (unchanged): it lets the purge delete when
  the transaction-local setting ``cc.retention_purge`` is on.
- SQLite (the embedded default): one trigger per table and operation, written from the table's
  current columns after every ``migrate`` (``install_sqlite``, on ``post_migrate``). The user
  and the purge's permission come from two functions each connection registers
  (``cc_actor_id()``, ``cc_retention_purge()``, see ``register_sqlite_functions``), reading
  what ``privacy.middleware.set_actor`` and ``privacy.retention.purge_transaction`` set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True)
class Audited:
    """How a configuration table's rows are logged.

    The organisation is the row's ``organisation_id``, or, with ``parent``, the ``org_column``
    of the ``parent`` row whose ``key`` equals the row's ``column``. ``columns``: the only
    columns logged (secrets, hashes and counters the application bumps are left out); empty:
    every column."""

    parent: str = ""
    key: str = ""
    column: str = ""
    org_column: str = "organisation_id"
    columns: tuple[str, ...] = ()


def _under(parent: str, column: str, key: str = "id") -> Audited:
    return Audited(parent=parent, key=key, column=column)


_BY_MEMBERSHIP = Audited(parent="organisations_membership", key="user_id", column="user_id")

AUDITED: dict[str, Audited] = {
    # skills and queues
    "routing_skill": Audited(),
    "routing_queue": Audited(),
    "routing_queueskill": _under("routing_queue", "queue_id"),
    "routing_escalationstep": _under("routing_queue", "queue_id"),
    "supervision_queuehours": _under("routing_queue", "queue_id"),
    "surveys_surveysettings": _under("routing_queue", "queue_id"),
    "agents_team": Audited(),
    "agents_team_supervisors": _under("agents_team", "team_id"),
    "agents_agentskill": _under("agents_agentprofile", "agent_id"),
    # flows and endpoints
    "flows_flow": Audited(),
    "flows_flowversion": _under("flows_flow", "flow_id"),
    "flows_endpointflow": _under("flows_flow", "flow_id"),
    "channels_inbound_endpoint": Audited(),
    "channels_chat_chatwidget": Audited(),
    "channels_chat_chattopic": _under("channels_chat_chatwidget", "widget_id"),
    "webhooks_subscription": Audited(
        columns=("id", "name", "url", "events", "active", "organisation_id")
    ),
    # roles and access
    "auth_user": Audited(
        parent="organisations_membership",
        key="user_id",
        column="id",
        columns=("id", "username", "is_superuser", "is_staff", "is_active"),
    ),
    "auth_user_groups": _BY_MEMBERSHIP,
    "auth_user_user_permissions": _BY_MEMBERSHIP,
    "auth_group_permissions": Audited(),
    "organisations_membership": Audited(),
    "organisations_sharingagreement": Audited(
        parent="organisations_organisation", key="id", column="owner_id", org_column="id"
    ),
    "apitokens_servicetoken": Audited(
        columns=(
            "id",
            "name",
            "scope",
            "prefix",
            "expires_at",
            "revoked_at",
            "created_by_id",
            "revoked_by_id",
            "organisation_id",
        )
    ),
    "sso_identityprovider": Audited(
        columns=(
            "id",
            "name",
            "kind",
            "enabled",
            "discovery_url",
            "client_id",
            "scopes",
            "acr_values",
            "match_on",
            "create_accounts",
            "role_claim",
            "role_mapping",
            "new_account_team_id",
            "organisation_id",
        )
    ),
    # what agents use, what is published, how long data is kept
    "console_wrapupcode": Audited(),
    "console_cannedresponse": Audited(),
    "publicquality_commitment": Audited(),
    "privacy_retentionpolicy": Audited(),
}

# --- PostgreSQL ---------------------------------------------------------------------------

PG_CONFIG_FUNCTION = """
CREATE OR REPLACE FUNCTION privacy_audit_config() RETURNS trigger AS $$
DECLARE
    row_new jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    row_old jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    r jsonb;
    actor bigint := NULLIF(current_setting('cc.actor_id', true), '')::bigint;
    org bigint;
BEGIN
    -- TG_ARGV: parent table, its key, the row's column, the parent's organisation column,
    -- the columns logged (comma-separated; empty: all)
    IF TG_ARGV[4] <> '' THEN
        row_new := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(row_new)
                    WHERE key = ANY(string_to_array(TG_ARGV[4], ',')));
        row_old := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(row_old)
                    WHERE key = ANY(string_to_array(TG_ARGV[4], ',')));
    END IF;
    IF TG_OP = 'UPDATE' AND row_new = row_old THEN
        RETURN NULL;
    END IF;
    r := COALESCE(row_new, row_old);
    IF TG_ARGV[0] = '' THEN
        org := (COALESCE(to_jsonb(NEW), to_jsonb(OLD))->>TG_ARGV[3])::bigint;
    ELSE
        EXECUTE format('SELECT %I FROM %I WHERE %I = $1 LIMIT 1',
                       TG_ARGV[3], TG_ARGV[0], TG_ARGV[1])
            INTO org USING (COALESCE(to_jsonb(NEW), to_jsonb(OLD))->>TG_ARGV[2])::bigint;
    END IF;
    INSERT INTO privacy_accesslog
        (at, actor_id, actor_name, organisation_id, action, object_type, object_id, details)
    VALUES (
        clock_timestamp(), actor,
        COALESCE((SELECT username FROM auth_user WHERE id = actor), ''),
        org, 'config', TG_TABLE_NAME, COALESCE(r->>'id', ''),
        jsonb_build_object('op', lower(TG_OP), 'old', row_old, 'new', row_new,
                           'database_user', session_user::text)
    );
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def trigger_name(table: str) -> str:
    return f"privacy_audit_{table}"[:63]


def _pg_args(spec: Audited) -> str:
    parts = (spec.parent, spec.key, spec.column, spec.org_column, ",".join(spec.columns))
    return ", ".join(f"'{part}'" for part in parts)


def install_postgresql(schema_editor: Any) -> None:
    """(Re)create the function and one trigger per audited table that exists."""
    schema_editor.execute(PG_CONFIG_FUNCTION, params=None)
    existing = set(schema_editor.connection.introspection.table_names())
    for table, spec in AUDITED.items():
        if table not in existing:
            continue
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {trigger_name(table)} ON "{table}"')
        schema_editor.execute(
            f'CREATE TRIGGER {trigger_name(table)} AFTER INSERT OR UPDATE OR DELETE ON "{table}"'
            f" FOR EACH ROW EXECUTE FUNCTION privacy_audit_config({_pg_args(spec)})"
        )


# --- SQLite -------------------------------------------------------------------------------


def register_sqlite_functions(wrapper: BaseDatabaseWrapper) -> None:
    """Give a new SQLite connection the two functions the triggers read, and let ``flush``
    (tests) empty the log as PostgreSQL's TRUNCATE does."""
    raw = wrapper.connection
    raw.create_function("cc_actor_id", 0, lambda: getattr(wrapper, "cc_actor_id", None))
    raw.create_function(
        "cc_retention_purge", 0, lambda: 1 if getattr(wrapper, "cc_retention_purge", False) else 0
    )
    ops = wrapper.ops
    if getattr(ops, "_cc_flush_wrapped", False):
        return
    flush = ops.execute_sql_flush

    def execute_sql_flush(sql_list: Iterable[str]) -> None:
        wrapper.cc_retention_purge = True  # type: ignore[attr-defined]
        try:
            flush(sql_list)
        finally:
            wrapper.cc_retention_purge = False  # type: ignore[attr-defined]

    ops.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    ops._cc_flush_wrapped = True  # type: ignore[attr-defined]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_statements(table: str, spec: Audited, columns: list[str]) -> list[str]:
    logged = [c for c in columns if not spec.columns or c in spec.columns]

    def row(alias: str) -> str:
        pairs = ", ".join(f"'{c}', {alias}.{_q(c)}" for c in logged)
        return f"json_object({pairs})"

    def org(alias: str) -> str:
        if not spec.parent:
            return f"{alias}.{_q(spec.org_column)}" if spec.org_column in columns else "NULL"
        return (
            f"(SELECT {_q(spec.org_column)} FROM {_q(spec.parent)}"  # noqa: S608 (our names)
            f" WHERE {_q(spec.key)} = {alias}.{_q(spec.column)} LIMIT 1)"
        )

    statements = []
    for op, alias, old, new in (
        ("insert", "NEW", "NULL", row("NEW")),
        ("update", "NEW", row("OLD"), row("NEW")),
        ("delete", "OLD", row("OLD"), "NULL"),
    ):
        name = f"{trigger_name(table)}_{op}"
        when = f" WHEN {row('OLD')} IS NOT {row('NEW')}" if op == "update" else ""
        statements += [
            f"DROP TRIGGER IF EXISTS {name}",
            f"CREATE TRIGGER {name} AFTER {op.upper()} ON {_q(table)}{when} BEGIN"  # noqa: S608
            " INSERT INTO privacy_accesslog"
            " (at, actor_id, actor_name, organisation_id, action, object_type, object_id,"
            " details) VALUES ("
            "strftime('%Y-%m-%d %H:%M:%f', 'now'), cc_actor_id(),"
            " COALESCE((SELECT username FROM auth_user WHERE id = cc_actor_id()), ''),"
            f" {org(alias)}, 'config', '{table}', CAST({alias}.id AS TEXT),"
            f" json_object('op', '{op}', 'old', json({old}), 'new', json({new})));"
            " END",
        ]
    return statements


SQLITE_APPEND_ONLY = [
    "DROP TRIGGER IF EXISTS privacy_accesslog_no_update",
    "CREATE TRIGGER privacy_accesslog_no_update BEFORE UPDATE ON privacy_accesslog BEGIN"
    " SELECT RAISE(ABORT, 'privacy_accesslog is append-only: UPDATE refused'); END",
    "DROP TRIGGER IF EXISTS privacy_accesslog_no_delete",
    "CREATE TRIGGER privacy_accesslog_no_delete BEFORE DELETE ON privacy_accesslog"
    " WHEN cc_retention_purge() IS NOT 1 BEGIN"
    " SELECT RAISE(ABORT, 'privacy_accesslog is append-only: DELETE refused'); END",
]


def install_sqlite(connection: BaseDatabaseWrapper) -> None:
    """(Re)create the SQLite triggers from the tables' current columns (idempotent)."""
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
        statements = list(SQLITE_APPEND_ONLY) if "privacy_accesslog" in existing else []
        for table, spec in AUDITED.items():
            if table in existing:
                cursor.execute(f"PRAGMA table_info({_q(table)})")
                columns = [info[1] for info in cursor.fetchall()]
                statements += _sqlite_statements(table, spec, columns)
        for statement in statements:
            cursor.execute(statement)


def install_after_migrate(using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: SQLite's triggers follow the tables' columns."""
    from django.db import connections

    connection = connections[using]
    if connection.vendor == "sqlite":
        install_sqlite(connection)


def on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        register_sqlite_functions(connection)
