"""The survey's delay is a Celery countdown on the real broker (issue 14): with a real worker
and no beat, a survey goes when its delay has passed, and not before; the beat sweep is a
safety net registered in Celery beat and in the embedded scheduler."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from channels_inbound.email.models import EmailThreadEntry
from configuration.models import Queue
from interactions.actions import do_create_interaction
from surveys.models import SurveyInvitation, SurveySettings
from tests.support import celery_broker, clear_broker, start_workers, stop_workers

from .survey_helpers import serve_and_close

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def worker(settings: Any) -> Iterator[None]:
    """One real Celery worker on this test's Redis db, and no beat."""

    broker = settings.REDIS_URL
    clear_broker(broker)
    with celery_broker(broker, settings):
        processes = start_workers(
            1,
            broker,
            extra_env={
                "PUBLIC_BASE_URL": "https://contact.caf.example.fr",
                "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            },
        )
        try:
            yield
        finally:
            stop_workers(processes)


def _status(invitation_id: int) -> str:
    return str(SurveyInvitation.objects.get(pk=invitation_id).status)


@pytest.mark.django_db(transaction=True)
def test_the_survey_goes_after_its_countdown_without_any_sweep(worker: None) -> None:
    # given a queue asking the survey 3 s after closing
    queue = Queue.objects.create(code="caf-mail", name="CAF courriels", sla_target_seconds=86400)
    SurveySettings.objects.create(queue=queue, enabled=True, delay_seconds=3)
    interaction = do_create_interaction(
        channel="email", queue=queue, contact=None, subject="Mon dossier"
    )
    EmailThreadEntry.objects.create(
        message_id="<countdown@example.org>",
        interaction=interaction,
        direction=EmailThreadEntry.Direction.INBOUND,
        citizen_address="claire.dupont@example.org",
        our_address="contact@caf.example.fr",
    )
    # when it closes (the task is queued with the countdown after the commit)
    serve_and_close(interaction)
    invitation = SurveyInvitation.objects.get(interaction=interaction)
    assert invitation.status == SurveyInvitation.Status.SCHEDULED
    # then it is still waiting a moment later, and sent once the delay has passed
    time.sleep(1)
    assert _status(invitation.pk) == SurveyInvitation.Status.SCHEDULED
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _status(invitation.pk) != "sent":
        time.sleep(0.3)
    assert _status(invitation.pk) == SurveyInvitation.Status.SENT


def test_the_sweep_is_in_beat_and_in_the_embedded_scheduler(settings: Any) -> None:
    from contactcentre.embedded import EmbeddedScheduler

    assert settings.CELERY_BEAT_SCHEDULE["survey-sweep"]["task"] == "surveys.sweep"
    scheduler = EmbeddedScheduler()
    assert scheduler.entries["survey-sweep"] == ("surveys.sweep", 60.0)
    scheduler.executor.shutdown(wait=False)
