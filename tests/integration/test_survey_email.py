"""The satisfaction survey by e-mail (issue 14): a signed, expiring link to a page without
login; used twice, the first answer stays and the page says so; after expiry, a clear message.
Also the chat window's answer endpoint (the widget posts there from partner sites)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.core.signing import TimestampSigner, b62_encode
from django.test import Client
from django.utils import timezone

from channels_inbound.email.models import EmailThreadEntry
from configuration.models import Queue
from interactions.actions import do_create_interaction
from interactions.models import Interaction
from supervision.models import SatisfactionResponse
from surveys.models import SurveyInvitation
from surveys.tokens import SALT, make_token

from .survey_helpers import serve_and_close, survey_for, sweep_after_delay

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

PUBLIC = "https://contact.caf.example.fr"
CITIZEN = "claire.dupont@example.org"


@pytest.fixture
def queue(db: Any, settings: Any) -> Queue:
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.LANGUAGE_CODE = "fr"
    q = Queue.objects.create(code="caf-mail", name="CAF courriels", sla_target_seconds=86400)
    survey_for(q)
    return q


def email_conversation(queue: Queue, capture: Callable[..., Any]) -> Interaction:
    interaction = do_create_interaction(
        channel="email", queue=queue, contact=None, subject="Mon dossier APL"
    )
    EmailThreadEntry.objects.create(
        message_id=f"<{interaction.pk}@example.org>",
        interaction=interaction,
        direction=EmailThreadEntry.Direction.INBOUND,
        citizen_address=CITIZEN,
        our_address="contact@caf.example.fr",
        subject="Mon dossier APL",
    )
    with capture(execute=True):
        serve_and_close(interaction)
    sweep_after_delay(capture)
    return interaction


def survey_link() -> str:
    """The link of the last e-mail, as a path on our site."""
    found = re.search(re.escape(PUBLIC) + r"(/surveys/\S+/)", str(mail.outbox[-1].body))
    assert found, mail.outbox[-1].body
    return found.group(1)


def test_the_email_link_opens_a_page_without_login_and_records_the_rating(
    queue: Queue, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    interaction = email_conversation(queue, django_capture_on_commit_callbacks)
    # then one e-mail went to the citizen, with the link and how long it is valid
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [CITIZEN]
    assert "Ce lien est valable 7 jours." in message.body
    link = survey_link()
    # when the citizen opens it (no login): the question, 1 to 5 and a comment
    page = client.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Êtes-vous satisfait de la réponse que vous avez reçue\u00a0?" in html
    assert html.count('type="radio" name="score"') == 5
    assert "4 sur 5\u00a0: satisfait" in html
    # an empty choice is refused with a clear message, nothing recorded
    refused = client.post(link, {"comment": "rien"})
    assert "Choisissez une note de 1 à 5." in refused.content.decode()
    assert not SatisfactionResponse.objects.exists()
    # when they choose 4 with a comment
    answered = client.post(link, {"score": "4", "comment": "Réponse claire, merci."})
    assert "votre note de 4 sur 5 est enregistrée" in answered.content.decode()
    response = SatisfactionResponse.objects.get(interaction=interaction)
    assert (response.score, response.comment) == (4, "Réponse claire, merci.")
    assert SurveyInvitation.objects.get().status == SurveyInvitation.Status.ANSWERED


def test_a_link_used_twice_keeps_the_first_answer_and_says_so(
    queue: Queue, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    interaction = email_conversation(queue, django_capture_on_commit_callbacks)
    link = survey_link()
    client.post(link, {"score": "2"})
    # when the link is used again, to look or to answer differently
    again = client.get(link)
    changed = client.post(link, {"score": "5"})
    # then the first answer stays, and the page says it was already given
    for page in (again, changed):
        assert page.status_code == 200
        assert (
            "Vous avez déjà répondu à cette enquête (note\u00a0: 2 sur 5)" in page.content.decode()
        )
    assert SatisfactionResponse.objects.get(interaction=interaction).score == 2


def test_an_expired_or_altered_link_says_so_clearly(
    queue: Queue, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    email_conversation(queue, django_capture_on_commit_callbacks)
    invitation = SurveyInvitation.objects.get()

    class EightDaysAgo(TimestampSigner):
        def timestamp(self) -> str:
            return b62_encode(int(time.time()) - 8 * 86400)

    old = EightDaysAgo(salt=SALT).sign_object({"i": invitation.pk})
    expired = client.post(f"/surveys/{old}/", {"score": "5"})
    assert expired.status_code == 410
    assert "Cette enquête a expiré" in expired.content.decode()
    altered = client.get(survey_link().replace("/surveys/", "/surveys/x"))
    assert altered.status_code == 404
    assert "Ce lien n'est pas valide." in altered.content.decode()
    assert not SatisfactionResponse.objects.exists()


def test_no_email_without_the_citizens_address(
    queue: Queue, django_capture_on_commit_callbacks: Any
) -> None:
    interaction = do_create_interaction(
        channel="email", queue=queue, contact=None, subject="Sans adresse"
    )
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(interaction)
    sweep_after_delay(django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert SurveyInvitation.objects.get().reason == "no_address"


def test_the_chat_windows_answer_endpoint(queue: Queue, client: Client) -> None:
    # given a chat survey shown in the window (sent)
    interaction = do_create_interaction(channel="chat", queue=queue, contact=None, subject="Chat")
    invitation = SurveyInvitation.objects.create(
        interaction=interaction,
        channel="chat",
        status=SurveyInvitation.Status.SENT,
        due_at=timezone.now(),
        sent_at=timezone.now(),
    )
    url = f"/surveys/chat/{make_token(invitation.pk)}/"
    # a score out of range is refused; the widget on a partner site may read the answers
    bad = client.post(url, {"score": "6"}, HTTP_ORIGIN="https://www.caf.example.fr")
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_score")
    assert bad["Access-Control-Allow-Origin"] == "*"
    ok = client.post(url, {"score": "5", "comment": "Très bien"})
    assert ok.json() == {"ok": True}
    twice = client.post(url, {"score": "1"})
    assert (twice.status_code, twice.json()["error"]) == (409, "already_answered")
    assert SatisfactionResponse.objects.get(interaction=interaction).score == 5
    forged = client.post("/surveys/chat/forged-token/", {"score": "5"})
    assert forged.status_code == 404
