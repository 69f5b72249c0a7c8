# The agents' state history, moved from supervision (its table renamed there, supervision 0003),
# with the reason of each change (a pause's, an offline's).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0006_alter_agentpresence_pause_reason"),
        ("supervision", "0003_agentstatechange_to_agents"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="AgentStateChange",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("state", models.CharField(max_length=10, verbose_name="state")),
                        ("at", models.DateTimeField(verbose_name="at")),
                        (
                            "agent",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="state_changes",
                                to="agents.agentprofile",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "agent state change",
                        "verbose_name_plural": "agent state changes",
                        "ordering": ["at", "id"],
                        "indexes": [models.Index(fields=["at"], name="agent_state_change_at_idx")],
                    },
                ),
            ],
        ),
        migrations.AddField(
            model_name="agentstatechange",
            name="reason",
            field=models.CharField(blank=True, default="", max_length=16, verbose_name="reason"),
            preserve_default=False,
        ),
    ]
