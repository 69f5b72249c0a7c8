"""Interactions: the life cycle in the database, and messages that cannot be duplicated."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections

from configuration.models import Queue, QueueSkill, Skill
from contacts.actions import resolve_contact
from interactions.actions import (
    StaleTransition,
    do_create_interaction,
    do_record_message,
    do_transition_interaction,
)
from interactions.lifecycle import IllegalTransition, Status
from interactions.models import Interaction, InteractionTransition, Message


@pytest.mark.django_db
def test_a_new_interaction_takes_its_queue_requirements_and_is_queued() -> None:
    skill = Skill.objects.create(code="caf-logement", name="APL")
    queue = Queue.objects.create(code="caf", name="CAF", priority=2, sla_target_seconds=60)
    QueueSkill.objects.create(queue=queue, skill=skill, min_level=3)
    contact = resolve_contact("phone", "06 12 34 56 78").contact
    interaction = do_create_interaction(channel="voice", contact=contact, queue=queue)
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert interaction.required_skills == {"caf-logement": 3}
    assert interaction.priority == 2
    assert interaction.queued_at is not None
    assert interaction.sla_due_at is not None
    assert (interaction.sla_due_at - interaction.created_at).total_seconds() == pytest.approx(
        60, abs=1
    )


@pytest.mark.django_db
def test_each_transition_is_stamped_and_logged() -> None:
    interaction = do_create_interaction(channel="sms", contact=None)
    for status in (Status.OFFERED, Status.ASSIGNED, Status.WRAP_UP, Status.CLOSED):
        do_transition_interaction(interaction=interaction, to=status, reason="test")
    interaction.refresh_from_db()
    assert interaction.status == Status.CLOSED
    assert all(
        getattr(interaction, f) is not None
        for f in ("queued_at", "offered_at", "assigned_at", "wrap_up_at", "closed_at")
    )
    assert list(
        InteractionTransition.objects.filter(interaction=interaction).values_list(
            "from_status", "to_status"
        )
    ) == [
        ("new", "queued"),
        ("queued", "offered"),
        ("offered", "assigned"),
        ("assigned", "wrap_up"),
        ("wrap_up", "closed"),
    ]


@pytest.mark.django_db
def test_illegal_transition_changes_nothing() -> None:
    interaction = do_create_interaction(channel="chat", contact=None)
    with pytest.raises(IllegalTransition):
        do_transition_interaction(interaction=interaction, to=Status.WRAP_UP)
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert interaction.wrap_up_at is None
    assert InteractionTransition.objects.filter(interaction=interaction).count() == 1


@pytest.mark.django_db
def test_a_stale_copy_cannot_move_an_interaction_someone_else_moved() -> None:
    interaction = do_create_interaction(channel="voice", contact=None)
    stale = Interaction.objects.get(pk=interaction.pk)
    do_transition_interaction(interaction=interaction, to=Status.ABANDONED)
    with pytest.raises(StaleTransition):
        do_transition_interaction(interaction=stale, to=Status.OFFERED)
    interaction.refresh_from_db()
    assert interaction.status == Status.ABANDONED


@pytest.mark.django_db
def test_retried_webhook_with_the_same_provider_id_records_one_message() -> None:
    interaction = do_create_interaction(channel="sms", contact=None)
    first = do_record_message(
        interaction=interaction, direction="inbound", text="Bonjour 👋", provider_id="SM123"
    )
    again = do_record_message(
        interaction=interaction, direction="inbound", text="Bonjour 👋", provider_id="SM123"
    )
    assert first.created
    assert not again.created
    assert again.message.pk == first.message.pk
    assert Message.objects.filter(provider_id="SM123").count() == 1
    # The same id on another channel is another message.
    mail = do_create_interaction(channel="email", contact=None)
    assert do_record_message(interaction=mail, direction="inbound", provider_id="SM123").created


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_provider_id_make_one_message() -> None:
    # given 20 deliveries of the same SMS racing each other on PostgreSQL
    interaction = do_create_interaction(channel="sms", contact=None)
    barrier = threading.Barrier(20)

    def deliver(_: int) -> bool:
        try:
            barrier.wait(timeout=10)
            return do_record_message(
                interaction=interaction, direction="inbound", text="Allô ?", provider_id="SMdup"
            ).created
        finally:
            close_old_connections()

    # when they all try to insert at once
    with ThreadPoolExecutor(max_workers=20) as pool:
        created = list(pool.map(deliver, range(20)))

    # then exactly one was stored and the others saw it
    assert created.count(True) == 1
    assert Message.objects.filter(channel="sms", provider_id="SMdup").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_contacts_from_one_number_make_one_citizen() -> None:
    barrier = threading.Barrier(10)

    def arrive(_: int) -> int:
        try:
            barrier.wait(timeout=10)
            contact = resolve_contact("phone", "06 12 34 56 78").contact
            assert contact is not None
            return contact.pk
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = set(pool.map(arrive, range(10)))
    assert len(ids) == 1
