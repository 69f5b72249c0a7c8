"""DRF's permanent tokens (rest_framework.authtoken) are gone: they never expired and skipped
the second factor. Their table, migration records and content types are removed, so every
integration gets a new token (personal or service, see docs/operations.md "API tokens")."""

from django.db import migrations


def forget_authtoken(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="authtoken").delete()  # and their permissions
    schema_editor.execute("DROP TABLE IF EXISTS authtoken_token")
    schema_editor.execute("DELETE FROM django_migrations WHERE app = 'authtoken'")


class Migration(migrations.Migration):
    dependencies = [
        ("apitokens", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(forget_authtoken, migrations.RunPython.noop)]
