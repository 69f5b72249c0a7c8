"""E-mail acknowledgements are kept per organisation: one a day per sender and organisation."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def organisation_from_interaction(apps: Any, schema_editor: Any) -> None:
    Acknowledgement = apps.get_model("channels_email", "EmailAcknowledgement")
    Interaction = apps.get_model("interactions", "Interaction")
    for ack in Acknowledgement.objects.filter(organisation__isnull=True).iterator():
        org_id = (
            Interaction.objects.filter(pk=ack.interaction_id)
            .values_list("organisation_id", flat=True)
            .first()
        )
        Acknowledgement.objects.filter(pk=ack.pk).update(organisation_id=org_id)


class Migration(migrations.Migration):
    dependencies = [
        ("channels_email", "0001_initial"),
        ("organisations", "0003_membership_default"),
        ("interactions", "0005_organisation_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="emailacknowledgement",
            name="organisation",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="organisations.organisation",
                verbose_name="organisation",
            ),
        ),
        migrations.RunPython(organisation_from_interaction, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="emailacknowledgement",
            name="organisation",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="organisations.organisation",
                verbose_name="organisation",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="emailacknowledgement", name="email_ack_once_per_day"
        ),
        migrations.AddConstraint(
            model_name="emailacknowledgement",
            constraint=models.UniqueConstraint(
                fields=("organisation", "address", "day"), name="email_ack_once_per_org_day"
            ),
        ),
    ]
