"""The post-call survey on the phone: after the conversation with the agent, the caller hears
"tapez 1 à 5" and presses a key.

The question is a ``survey`` node of the flow engine (``flows.engine``): the number's flow may
have its own, named by the graph's ``post_call``; otherwise the queue's survey text is asked
with a one-node graph. It runs when the queue's survey is on for the phone, once per
interaction (its :class:`~surveys.models.SurveyInvitation`). ``do_dial_ended`` (the agent's leg
ended after a conversation) asks :func:`post_call_survey` instead of hanging up, through the
channel hook ``channels_inbound.hooks.AFTER_CONVERSATION`` (registered in ``SurveysConfig``); the
keys come back to :func:`do_continue_voice_survey` (``/webhooks/twilio/voice/survey/``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from channels_inbound.providers.base import (
    GatherDigits,
    HangUp,
    PlayAudio,
    RedirectTo,
    SayText,
    VoiceInstruction,
)
from channels_inbound.voice.actions import tts_locale, webhook_url
from channels_inbound.voice.models import Call
from flows import engine
from interactions.actions import StaleTransition, do_transition_interaction
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction

from .actions import SurveyError, do_answer_survey, do_open_voice_survey, question, settings_for

logger = logging.getLogger(__name__)


def default_graph(text: str, language: str) -> dict[str, Any]:
    """The queue's question as a one-node flow (when the number's flow has no ``post_call``)."""
    with translation.override(language):
        prompt = text + " " + _("Press a key from 1 to 5.")
        thanks = _("Thank you for your answer. Goodbye.")
    return {
        "start": "survey",
        "post_call": "survey",
        "language": language,
        "nodes": {
            "survey": {"type": "survey", "prompt": {"text": prompt}, "thanks": {"text": thanks}}
        },
    }


def _graph(call: Call, interaction: Interaction) -> dict[str, Any]:
    version = call.flow_version
    if version is not None and version.graph.get("post_call"):
        return dict(version.graph)
    language = _language(call, interaction)
    return default_graph(question(settings_for(interaction.queue_id), language), language)


def _language(call: Call, interaction: Interaction) -> str:
    code = str(call.session.get("flow", {}).get("language") or interaction.language or "fr")
    return code[:2] if code[:2] in ("fr", "en") else "fr"


def post_call_survey(
    *, call: Call, interaction: Interaction, provider: str, now: datetime | None = None
) -> list[VoiceInstruction] | None:
    """The caller stays on the line for the survey: its first question, or None (no survey:
    off for this queue, or this interaction already had its one survey)."""
    now = now or timezone.now()
    survey = settings_for(interaction.queue_id)
    if survey is None or not survey.on(Channel.VOICE):
        return None
    with transaction.atomic():
        call = Call.objects.select_for_update().get(pk=call.pk)
        if do_open_voice_survey(interaction=interaction, now=now) is None:
            return None
        graph = _graph(call, interaction)
        step = engine.post_call(
            graph, context=engine.Context(now=now), language=_language(call, interaction)
        )
        if step is None:  # pragma: no cover - _graph always has a post_call node
            return None
        _release_agent(interaction, now)
        return _apply(call, graph, step, provider)


def _release_agent(interaction: Interaction, now: datetime) -> None:
    """The conversation is over: the agent goes to wrap-up while the caller rates it."""
    try:
        current = Interaction.objects.get(pk=interaction.pk)
        if current.status == Status.ASSIGNED:
            do_transition_interaction(
                interaction=current, to=Status.WRAP_UP, reason="call_completed", now=now
            )
    except StaleTransition:  # moved meanwhile (the caller's hang-up): nothing to do
        pass


def do_continue_voice_survey(
    *, call_sid: str, node_id: str, attempt: int, digits: str, provider: str
) -> list[VoiceInstruction]:
    """The caller pressed a key (or none) at the survey's question."""
    now = timezone.now()
    with transaction.atomic():
        call = (
            Call.objects.select_for_update(of=("self",))
            .select_related("flow_version", "interaction")
            .filter(call_sid=call_sid)
            .first()
        )
        state = call.session.get("survey") if call is not None else None
        if call is None or call.interaction is None or not isinstance(state, dict):
            return [HangUp()]
        graph = _graph(call, call.interaction)
        session = engine.Session.from_dict(state.get("flow", {}))
        if session.node_id != node_id or session.attempt != attempt:  # late or replayed
            return _apply(call, graph, engine.ask_again(graph, session=session), provider)
        step = engine.resume(
            graph, session=session, user_input=digits, context=engine.Context(now=now)
        )
        return _apply(call, graph, step, provider)


def _say(action: engine.Say) -> SayText | PlayAudio:
    if action.audio_url:
        return PlayAudio(action.audio_url)
    return SayText(action.text, tts_locale(action.language))


def _apply(
    call: Call, graph: dict[str, Any], step: engine.Step, provider: str
) -> list[VoiceInstruction]:
    out: list[VoiceInstruction] = []
    for action in step.actions:
        if isinstance(action, engine.Say):
            out.append(_say(action))
        elif isinstance(action, engine.Ask):
            url = webhook_url(provider, "survey", node=action.node_id, attempt=action.attempt)
            out.append(
                GatherDigits(
                    action_url=url,
                    prompts=[_say(action.prompt)],
                    timeout_seconds=action.timeout_seconds,
                )
            )
            out.append(RedirectTo(url))  # no key pressed: an empty answer
        elif isinstance(action, engine.Rate):
            _record(call, action.score)
        else:  # hang up, or a flow that goes on after the survey: the call ends here
            out.append(HangUp())
            break
    call.session = {**call.session, "survey": {"flow": step.session.to_dict()}}
    call.save(update_fields=["session"])
    return out


def _record(call: Call, score: int) -> None:
    invitation = getattr(call.interaction, "survey_invitation", None)
    if invitation is None:  # pragma: no cover - opened with the survey
        return
    try:
        do_answer_survey(invitation_id=invitation.pk, score=score)
    except SurveyError as exc:
        logger.info("call %s: survey answer not recorded (%s)", call.call_sid, exc.code)
