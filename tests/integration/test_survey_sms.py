"""The satisfaction survey by SMS (issue 14): sent after the queue's delay through the outbound
SMS path, answered "4" or "5 merci"; "bonjour" is a normal message, STOP is honoured; at most
one survey per interaction; the answers are the reports' CSAT."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from channels_inbound.models import Endpoint
from channels_inbound.sms.models import InboundSms, OutboundSms, SmsOptOut
from configuration.models import Queue
from interactions.lifecycle import Status
from interactions.models import Interaction, Message
from supervision.models import SatisfactionResponse
from supervision.reports import summarize
from supervision.selectors import report_facts
from surveys.models import SurveyInvitation, SurveySettings
from tests.fake_twilio import FakeTwilioHttpClient
from tests.integration.channels import conftest as channel_fixtures
from tests.integration.channels.conftest import FakeTwilio, payload

from .survey_helpers import serve_and_close, survey_for, sweep_after_delay

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

telephony = channel_fixtures.telephony
twilio = channel_fixtures.twilio

OUR_NUMBER = "+33900000001"
CITIZEN = "+33612345678"
SMS_URL = "/webhooks/twilio/sms/"


def sid(n: int) -> str:
    return f"SM{n:032x}"


@pytest.fixture
def queue(db: Any) -> Queue:
    q = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    Endpoint.objects.create(channel="sms", address=OUR_NUMBER, name="CAF SMS", queue=q)
    survey_for(q, question_fr="Êtes-vous satisfait de notre réponse ?")
    return q


@pytest.fixture
def sms(
    twilio: FakeTwilio, django_capture_on_commit_callbacks: Callable[..., Any]
) -> Callable[..., Any]:
    """The citizen sends an SMS (webhook, then the ingestion it queued)."""
    counter = iter(range(1, 1000))

    def send(body: str) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            reply = twilio.post(
                SMS_URL, payload("sms_inbound", Body=body, MessageSid=sid(next(counter)))
            )
        assert reply.status == 200
        return reply

    return send


def sent_sms() -> list[str]:
    """The bodies our provider was asked to send, in order."""
    return [
        str(r.data.get("Body", "")) for r in FakeTwilioHttpClient.requests if r.method == "POST"
    ]


def conversation(sms: Callable[..., Any], capture: Callable[..., Any]) -> Interaction:
    """The citizen writes, an agent answers and closes, the survey goes after the delay."""
    sms("Bonjour, où en est mon dossier ?")
    interaction = Interaction.objects.filter(channel="sms").latest("id")
    with capture(execute=True):
        serve_and_close(interaction)
    sweep_after_delay(capture)
    return interaction


def test_the_survey_goes_after_the_delay_and_4_is_recorded(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a closed conversation
    sms("Bonjour, où en est mon dossier ?")
    interaction = Interaction.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(interaction)
    # then nothing is sent before the queue's delay
    with django_capture_on_commit_callbacks(execute=True):
        from surveys.actions import do_sweep_surveys

        assert do_sweep_surveys() == 0
    assert sent_sms() == []
    # when the delay has passed, the survey SMS goes through the outbound SMS path
    sweep_after_delay(django_capture_on_commit_callbacks)
    assert sent_sms() == [
        "Êtes-vous satisfait de notre réponse ? Répondez par un chiffre de 1 à 5."
    ]
    outbound = OutboundSms.objects.get()
    assert (outbound.to, outbound.from_number, outbound.interaction) == (
        CITIZEN,
        OUR_NUMBER,
        interaction,
    )
    assert outbound.status != "pending"  # handed to the provider
    # the survey keeps no readable number (a keyed digest to match the reply)
    assert not SurveyInvitation.objects.filter(address__contains="612345678").exists()
    # when the citizen answers "4"
    sms("4")
    # then the answer is recorded, and it is no message and no new conversation
    answer = SatisfactionResponse.objects.get(interaction=interaction)
    assert answer.score == 4
    assert Interaction.objects.count() == 1
    assert not Message.objects.filter(text="4").exists()
    assert InboundSms.objects.get(body="4").state == InboundSms.State.INGESTED
    interaction.refresh_from_db()
    assert interaction.status == Status.CLOSED  # not reopened by the answer


def test_the_queues_question_is_asked_in_the_conversations_language(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    SurveySettings.objects.filter(queue=queue).update(question_en="Were you happy with our answer?")
    sms("Hello, where is my file?")
    interaction = Interaction.objects.get()
    Interaction.objects.filter(pk=interaction.pk).update(language="en")
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(interaction)
    sweep_after_delay(django_capture_on_commit_callbacks)
    assert sent_sms() == ["Were you happy with our answer? Reply with a number from 1 to 5."]
    # a queue without its own question asks the standard one, in English too
    SurveySettings.objects.filter(queue=queue).update(question_en="")
    sms("Another question")
    second = Interaction.objects.latest("id")
    assert second.pk != interaction.pk
    Interaction.objects.filter(pk=second.pk).update(language="en")
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(second)
    sweep_after_delay(django_capture_on_commit_callbacks)
    assert sent_sms()[-1] == (
        "How satisfied are you with the answer you received? Rate it from 1 to 5."
        " Reply with a number from 1 to 5."
    )


def test_5_merci_counts_as_5_with_its_comment(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    interaction = conversation(sms, django_capture_on_commit_callbacks)
    sms("5 merci")
    answer = SatisfactionResponse.objects.get(interaction=interaction)
    assert (answer.score, answer.comment) == (5, "merci")


def test_bonjour_is_a_normal_message_not_an_answer(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = conversation(sms, django_capture_on_commit_callbacks)
    sms("bonjour")
    assert not SatisfactionResponse.objects.exists()
    new = Message.objects.get(text="bonjour").interaction
    assert new != first
    assert new.status == Status.QUEUED
    # the survey is still open: a score after it is still taken
    sms("3")
    assert SatisfactionResponse.objects.get().score == 3


def test_stop_is_honoured_and_the_number_is_never_surveyed_again(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation(sms, django_capture_on_commit_callbacks)
    sms("STOP")
    assert SmsOptOut.objects.get(phone=CITIZEN).active
    assert not SatisfactionResponse.objects.exists()
    assert not Message.objects.filter(text="STOP").exists()
    surveys_sent = len(sent_sms())
    # when the citizen writes again (not a survey answer: a new conversation) and it closes
    sms("Une autre question")
    later = Interaction.objects.filter(channel="sms").latest("id")
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(later)
    sweep_after_delay(django_capture_on_commit_callbacks)
    # then no survey goes to the opted-out number
    assert len(sent_sms()) == surveys_sent
    invitation = SurveyInvitation.objects.get(interaction=later)
    assert (invitation.status, invitation.reason) == (SurveyInvitation.Status.SKIPPED, "opted_out")


def test_at_most_one_survey_per_interaction_and_one_answer(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    interaction = conversation(sms, django_capture_on_commit_callbacks)
    # reopened and closed again: no second survey
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(interaction)
    sweep_after_delay(django_capture_on_commit_callbacks, extra=3600)
    assert len([b for b in sent_sms() if "1 à 5" in b]) == 1
    assert SurveyInvitation.objects.filter(interaction=interaction).count() == 1
    # two answers: the first stays, the second is an ordinary message
    sms("4")
    sms("1")
    assert SatisfactionResponse.objects.get(interaction=interaction).score == 4
    assert Message.objects.filter(text="1").exists()


def test_an_unanswered_or_abandoned_interaction_is_not_surveyed(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sms("Bonjour")
    interaction = Interaction.objects.get()
    from interactions.actions import do_transition_interaction

    with django_capture_on_commit_callbacks(execute=True):
        do_transition_interaction(interaction=interaction, to=Status.CLOSED, reason="spam")
    sweep_after_delay(django_capture_on_commit_callbacks)
    assert not SurveyInvitation.objects.exists()
    assert sent_sms() == []


def test_a_survey_switched_off_sends_nothing(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    SurveySettings.objects.filter(queue=queue).update(on_sms=False)
    conversation(sms, django_capture_on_commit_callbacks)
    assert sent_sms() == []
    assert not SurveyInvitation.objects.exists()


def test_the_answers_are_the_reports_csat(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given two surveyed conversations answered 4 and 2
    conversation(sms, django_capture_on_commit_callbacks)
    sms("4")
    conversation(sms, django_capture_on_commit_callbacks)
    sms("2")
    # then the supervisors' report counts them: one satisfied of two answers
    now = timezone.now()
    figures = summarize(report_facts(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert (figures.csat_responses, figures.csat_satisfied) == (2, 1)
    assert figures.csat == pytest.approx(0.5)


def test_the_wallboard_shows_todays_csat(
    queue: Queue, sms: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.contrib.auth import get_user_model

    from supervision.access import scope_for
    from supervision.selectors import wallboard_snapshot

    # given one survey answered 5 and one answered 1 today
    with django_capture_on_commit_callbacks(execute=True):
        conversation(sms, django_capture_on_commit_callbacks)
        sms("5")
        conversation(sms, django_capture_on_commit_callbacks)
        sms("1")
    # then the wallboard's SMS line of the queue shows 50 % satisfied
    admin = get_user_model().objects.create_superuser("plateforme", "p@example.fr", "pw-T-1!")
    scope = scope_for(admin)
    assert scope is not None
    rows = [r for r in wallboard_snapshot(scope)["queues"] if r["queue_id"] == queue.pk]
    assert [(r["channel"], r["csat"]) for r in rows if r["csat"] is not None] == [("sms", 50.0)]
