"""Locks of the ingest path against an agent's or the router's transactions on PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connection, connections

from channels_inbound.ingest import InboundMessage, do_ingest_message
from configuration.models import Queue
from contacts.actions import resolve_contact
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def _waiting_on_a_lock(holder: psycopg.Connection[Any]) -> bool:
    row = holder.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone()
    return bool(row and row[0])


@pytest.mark.django_db(transaction=True)
def test_a_citizens_message_and_a_commit_that_updated_their_interaction_twice_both_go_through() -> (
    None
):
    # given: a citizen with an open SMS interaction, and an agent's transaction (a close: the
    # interaction's row updated twice, not yet committed); its commit re-checks the
    # interaction's foreign key to the citizen
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    citizen = resolve_contact("phone", "+33611112222").contact
    assert citizen is not None
    interaction = Interaction.objects.create(
        channel=Channel.SMS, contact=citizen, queue=queue, status=Status.ASSIGNED
    )
    agent = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    table = Interaction._meta.db_table
    agent.execute(f"UPDATE {table} SET subject = 'closing' WHERE id = %s", [interaction.pk])
    agent.execute(f"UPDATE {table} SET subject = 'closed' WHERE id = %s", [interaction.pk])
    outcome: dict[str, Any] = {}

    def deliver() -> None:
        try:
            outcome["result"] = do_ingest_message(
                InboundMessage(
                    channel=Channel.SMS,
                    sender="+33611112222",
                    recipient="+33900000001",
                    text="Et mon dossier ?",
                    provider_id="SM-lock-1",
                ),
                queue=queue,
            )
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    # when: the citizen's next SMS is ingested meanwhile: it locks the citizen, then waits for
    # the interaction
    ingest = threading.Thread(target=deliver)
    ingest.start()
    watcher = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    try:
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock(watcher) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ingest.is_alive()
        # and the agent's transaction commits (PostgreSQL's deadlock check runs after 1 s)
        agent.commit()
    finally:
        agent.close()
        watcher.close()
        ingest.join(15)
    # then: both went through: the close is stored and the SMS joined the interaction
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].interaction.pk == interaction.pk
    interaction.refresh_from_db()
    assert interaction.subject == "closed"
    assert interaction.messages.filter(text="Et mon dossier ?").exists()
