# The agents' state history moves to the agents app (agents.presence writes it with each
# change): the table is renamed, the model leaves this app's state (agents 0007 takes it).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("supervision", "0002_report_day_rollup"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable("AgentStateChange", "agents_agentstatechange"),
            ],
            state_operations=[migrations.DeleteModel("AgentStateChange")],
        ),
    ]
