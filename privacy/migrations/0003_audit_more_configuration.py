"""The configuration audit covers more tables and leaves secrets out (``privacy.triggers``):
queue hours, survey settings, chat topics, webhooks, user role flags and permissions, sharing
agreements, service tokens, identity providers, commitments and retention durations.

On SQLite the triggers are written after every ``migrate`` instead (``post_migrate``), from the
tables' current columns.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.db import migrations


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    from privacy.triggers import install_postgresql

    install_postgresql(schema_editor)


def uninstall(apps: Any, schema_editor: Any) -> None:
    """Back to 0002's triggers: drop every trigger this one may have added (0002's reverse drops
    the function, which PostgreSQL refuses while a trigger still uses it), then 0002's own."""
    if schema_editor.connection.vendor != "postgresql":
        return
    from privacy.triggers import AUDITED, trigger_name

    existing = set(schema_editor.connection.introspection.table_names())
    for table in AUDITED:
        if table in existing:
            schema_editor.execute(f'DROP TRIGGER IF EXISTS {trigger_name(table)} ON "{table}"')
    import_module("privacy.migrations.0002_audit_triggers").install(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0002_audit_triggers"),
        ("supervision", "0002_report_day_rollup"),
        ("surveys", "0001_survey_settings_and_invitations"),
        ("webhooks", "0001_initial"),
        ("apitokens", "0002_drop_drf_authtoken"),
        ("sso", "0001_identity_providers"),
        ("publicquality", "0001_commitments_and_follow_links"),
        ("organisations", "0003_membership_default"),
        ("channels_chat", "0003_organisation_required"),
        ("channels_inbound", "0004_endpoint_acknowledge"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
