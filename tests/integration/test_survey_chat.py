"""The chat window's survey (issue 14), server side: shown when the conversation ends (the
agent's wrap-up starts), again in a reloaded window until it is answered, never twice."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from channels_inbound.chat.actions import do_start_chat
from channels_inbound.chat.models import ChatSession
from channels_inbound.chat.selectors import snapshot
from supervision.models import SatisfactionResponse
from surveys.models import SurveyInvitation, SurveySettings
from tests.integration.channels.chat_helpers import make_widget, topic_id

from .survey_helpers import serve_and_close

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_the_survey_is_in_the_reloaded_window_until_answered(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given a mairie chat whose queue asks the survey, and a conversation an agent served
    widget = make_widget(flow=None)
    SurveySettings.objects.create(queue=widget.endpoint.queue, enabled=True)
    session = do_start_chat(
        widget=widget, name="Awa Diallo", topic_id=topic_id(widget, "État civil"), language="fr"
    )
    interaction = ChatSession.objects.get(pk=session.pk).interaction
    assert interaction is not None
    # when it ends (closed by the agent: its wrap-up, then closed)
    with django_capture_on_commit_callbacks(execute=True):
        serve_and_close(interaction)
    # then the survey was shown at once (no delay for the chat), once
    invitation = SurveyInvitation.objects.get(interaction=interaction)
    assert invitation.status == SurveyInvitation.Status.SENT
    # and a window opened again (a reload) shows it, with its question and scores
    again = snapshot(ChatSession.objects.get(pk=session.pk))
    assert again["state"] == "ended"
    survey = again["survey"]
    assert survey["question"].startswith("Êtes-vous satisfait de la réponse")
    assert survey["strings"]["scores"][4] == "5 sur 5\u00a0: très satisfait"
    # once answered, it is no longer shown
    assert client.post(survey["path"], {"score": "3"}).json() == {"ok": True}
    assert snapshot(ChatSession.objects.get(pk=session.pk))["survey"] is None
    assert SatisfactionResponse.objects.get(interaction=interaction).score == 3
