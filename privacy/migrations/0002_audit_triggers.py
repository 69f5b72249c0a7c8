"""PostgreSQL triggers: configuration changes are written to the access log, and the access log
refuses UPDATE and DELETE (DELETE only inside the retention purge).

Triggers, not model signals: ``QuerySet.update()``, ``bulk_create`` and raw SQL bypass signals,
not triggers. The embedded SQLite default gets neither (docs/quality-and-privacy.md, "Audit
log"): the views' access lines are still written there, configuration changes are not.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# table -> (parent table, its key column, the row's column pointing at it) when the table has no
# organisation_id of its own.
AUDITED: dict[str, tuple[str, str, str] | None] = {
    "routing_skill": None,
    "routing_queue": None,
    "routing_queueskill": ("routing_queue", "id", "queue_id"),
    "routing_escalationstep": ("routing_queue", "id", "queue_id"),
    "flows_flow": None,
    "flows_flowversion": ("flows_flow", "id", "flow_id"),
    "flows_endpointflow": ("flows_flow", "id", "flow_id"),
    "channels_inbound_endpoint": None,
    "channels_chat_chatwidget": None,
    "agents_team": None,
    "agents_team_supervisors": ("agents_team", "id", "team_id"),
    "agents_agentskill": ("agents_agentprofile", "id", "agent_id"),
    "auth_user_groups": ("organisations_membership", "user_id", "user_id"),
    "auth_group_permissions": None,
    "organisations_membership": None,
    "console_wrapupcode": None,
    "console_cannedresponse": None,
}

CONFIG_FUNCTION = """
CREATE OR REPLACE FUNCTION privacy_audit_config() RETURNS trigger AS $$
DECLARE
    row_new jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    row_old jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    r jsonb := COALESCE(row_new, row_old);
    actor bigint := NULLIF(current_setting('cc.actor_id', true), '')::bigint;
    org bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND row_new = row_old THEN
        RETURN NULL;
    END IF;
    IF TG_NARGS = 0 THEN
        org := (r->>'organisation_id')::bigint;
    ELSE
        EXECUTE format('SELECT organisation_id FROM %I WHERE %I = $1 LIMIT 1',
                       TG_ARGV[0], TG_ARGV[1])
            INTO org USING (r->>TG_ARGV[2])::bigint;
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

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION privacy_accesslog_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('cc.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'privacy_accesslog is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS privacy_accesslog_append_only ON privacy_accesslog;
CREATE TRIGGER privacy_accesslog_append_only BEFORE UPDATE OR DELETE ON privacy_accesslog
    FOR EACH ROW EXECUTE FUNCTION privacy_accesslog_append_only();
"""


def _trigger_name(table: str) -> str:
    return f"privacy_audit_{table}"[:63]


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CONFIG_FUNCTION, params=None)
    for table, parent in AUDITED.items():
        args = ", ".join(f"'{part}'" for part in parent) if parent else ""
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {_trigger_name(table)} ON "{table}"')
        schema_editor.execute(
            f'CREATE TRIGGER {_trigger_name(table)} AFTER INSERT OR UPDATE OR DELETE ON "{table}"'
            f" FOR EACH ROW EXECUTE FUNCTION privacy_audit_config({args})"
        )
    schema_editor.execute(APPEND_ONLY, params=None)


def uninstall(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in AUDITED:
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {_trigger_name(table)} ON "{table}"')
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS privacy_accesslog_append_only ON privacy_accesslog;"
        "DROP FUNCTION IF EXISTS privacy_accesslog_append_only();"
        "DROP FUNCTION IF EXISTS privacy_audit_config();"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0001_retention_and_access_log"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("routing", "0005_offer_status_failed"),
        ("flows", "0003_organisation_required"),
        ("channels_inbound", "0003_organisation_required"),
        ("channels_chat", "0003_organisation_required"),
        ("agents", "0006_alter_agentpresence_pause_reason"),
        ("organisations", "0003_membership_default"),
        ("console", "0003_organisation_required"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
