"""Phone writes: running the number's SVI flow, queueing the call, bridging it to the agent's
telework phone, and recording what the provider reports (answered, abandoned, durations).

Each function returns provider-neutral voice instructions; the view renders them with the
provider adapter (TwiML for Twilio). The flow itself is run by :mod:`flows.engine`, which knows
nothing about telephony.

When an agent accepts a call offer, routing sends ``offer_accepted`` and this channel bridges
the call (``receivers.bridge_accepted_call`` queues :func:`do_connect_agent`); a call that does
not reach the agent goes back to its queue through :func:`do_requeue_unreachable`, routing's
generic ``do_requeue_accepted`` plus what the phone failure means for the agent.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from agents.models import AgentProfile
from agents.presence import do_pause_missed, do_set_channels
from channels_inbound.hooks import after_conversation
from channels_inbound.ingest import InboundMessage, IngestError, do_ingest_message
from channels_inbound.media import is_pending, pending_entry, request_fetch
from channels_inbound.models import Endpoint
from channels_inbound.providers import base, get_backend, get_provider, outbound_retry_countdown
from channels_inbound.providers.base import (
    DialNumber,
    GatherDigits,
    HangUp,
    Pause,
    PlayAudio,
    RecordMessage,
    RedirectTo,
    SayText,
    VoiceInstruction,
)
from channels_inbound.providers.webhooks import absolute
from channels_inbound.queues import named_queue
from configuration.models import Queue
from contacts.actions import phone_or_none
from flows import engine
from flows.selectors import published_version_for_endpoint
from interactions.actions import StaleTransition, do_transition_interaction
from interactions.channels import Channel
from interactions.lifecycle import WAITING_STATUSES, Status
from interactions.models import Interaction
from kernel import event_catalogue
from kernel.events import SUPERVISORS_GROUP, agent_group, publish
from routing.models import OfferStatus
from routing.offers import do_requeue_accepted

from .models import Call, CallEvent, CallOutcome
from .selectors import estimated_wait_seconds, queue_position

logger = logging.getLogger(__name__)

# Provider call statuses after which the call is over.
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Text-to-speech locales for the flow's language codes.
TTS_LOCALES = {"fr": "fr-FR", "en": "en-GB", "de": "de-DE", "es": "es-ES", "it": "it-IT"}


class BridgeError(Exception):
    """The call could not be connected to the agent (the message says why)."""


class NoAgentNumber(BridgeError):
    """The agent has no telework phone number: the interaction must go back to the queue."""


class CallEnded(BridgeError):
    """The caller hung up before the agent could be connected."""


class ProviderFailed(BridgeError):
    """The provider's API refused, failed or did not answer in time (``PROVIDER_*_TIMEOUT_S``)."""


# The agent's leg ended without the agent: their phone did not take the call.
AGENT_UNREACHABLE_STATUSES = frozenset({"busy", "no-answer", "failed"})


def tts_locale(language: str) -> str:
    return language if "-" in language else TTS_LOCALES.get(language, "fr-FR")


def webhook_url(provider: str, name: str, **query: object) -> str:
    path = reverse(f"{provider}-voice-{name}")
    if query:
        path += "?" + urlencode(query)
    return absolute(path)


def _event(call: Call, kind: str, **data: object) -> bool:
    """Record ``kind`` once for ``call``; False when it was already recorded (a replay)."""
    _obj, created = CallEvent.objects.get_or_create(
        call=call, kind=kind[:40], defaults={"data": data}
    )
    return created


# --- Running the flow --------------------------------------------------------------------------
def _say(action: engine.Say) -> VoiceInstruction:
    if action.audio_url:
        return PlayAudio(action.audio_url)
    return SayText(action.text, tts_locale(action.language))


def _language(call: Call) -> str:
    return str(call.session.get("flow", {}).get("language") or "fr")


def _flow_summary(call: Call) -> str:
    path = " > ".join(call.session.get("flow", {}).get("path", [])) or "-"
    caller = call.caller_e164 or _("withheld number")
    return _("Call from %(caller)s. Voice menu: %(path)s") % {"caller": caller, "path": path}


def _queue_for(call: Call, code: str) -> Queue:
    endpoint = call.endpoint
    organisation_id = endpoint.organisation_id if endpoint is not None else None
    queue = named_queue(organisation_id, code, source=f"call {call.call_sid}")
    if queue is not None:
        return queue
    assert endpoint is not None
    return endpoint.queue


def _ingest(
    call: Call,
    *,
    queue_code: str,
    skills: dict[str, int],
    priority: int | None,
    language: str,
    subject: str,
    text: str,
    attachments: list[dict[str, object]] | None = None,
) -> Interaction:
    assert call.endpoint is not None
    result = do_ingest_message(
        InboundMessage(
            channel=Channel.VOICE,
            sender=call.caller,
            recipient=call.endpoint.address,
            text=text,
            subject=subject,
            provider_id=call.call_sid,
            thread_ref=call.call_sid,
            attachments=list(attachments or []),
            required_skills=skills or None,
            language=language,
            priority=priority,
        ),
        queue=_queue_for(call, queue_code),
    )
    if result.created and any(is_pending(a) for a in result.message.attachments or []):
        request_fetch(result.message.pk)  # a recording, fetched with the account's credentials
    call.interaction = result.interaction
    return result.interaction


def _apply(call: Call, step: engine.Step, provider: str) -> list[VoiceInstruction]:
    """Turn the engine's actions into voice instructions, doing what the terminal one says."""
    out: list[VoiceInstruction] = []
    call.session = {**call.session, "flow": step.session.to_dict()}
    language = step.session.language
    with translation.override(language):
        for action in step.actions:
            if isinstance(action, engine.Say):
                out.append(_say(action))
            elif isinstance(action, engine.Ask):
                query = {"node": action.node_id, "attempt": action.attempt}
                out.append(
                    GatherDigits(
                        action_url=webhook_url(provider, "gather", **query),
                        prompts=[_say(action.prompt)],  # type: ignore[list-item]
                        timeout_seconds=action.timeout_seconds,
                    )
                )
                # No key pressed: the provider goes on to the next verb, an empty answer.
                out.append(RedirectTo(webhook_url(provider, "gather", **query)))
            elif isinstance(action, engine.Enqueue):
                call.session["hold"] = {
                    "position": action.announce_position,
                    "wait": action.announce_wait,
                    "music": action.hold_music_url,
                }
                _ingest(
                    call,
                    queue_code=action.queue,
                    skills=action.skills,
                    priority=action.priority,
                    language=action.language,
                    subject=_("Phone call"),
                    text=_flow_summary(call),
                )
                call.outcome = CallOutcome.QUEUED
                out.extend(_wait_instructions(call, provider))
            elif isinstance(action, engine.Voicemail):
                call.session["voicemail"] = {
                    "queue": action.queue,
                    "skills": action.skills,
                    "priority": action.priority,
                    "language": action.language,
                }
                out.append(
                    RecordMessage(
                        action_url=webhook_url(provider, "recording"),
                        max_seconds=min(action.max_seconds, settings.VOICE_VOICEMAIL_MAX_SECONDS),
                    )
                )
                out.append(
                    SayText(_("We did not receive a message. Goodbye."), tts_locale(language))
                )
                out.append(HangUp())
            elif isinstance(action, engine.Callback):
                _ingest(
                    call,
                    queue_code=action.queue,
                    skills=action.skills,
                    priority=action.priority,
                    language=action.language,
                    subject=_("Callback request"),
                    text=_("Please call back %(number)s.") % {"number": call.caller_e164}
                    + " "
                    + _flow_summary(call),
                )
                call.outcome = CallOutcome.CALLBACK
                out.append(HangUp())
            elif isinstance(action, engine.Transfer):
                call.outcome = CallOutcome.TRANSFERRED
                out.append(DialNumber(number=action.number, caller_id=call.called))
                out.append(HangUp())
            elif isinstance(action, engine.Hangup):
                out.append(HangUp())
    call.save()
    return out


def do_start_call(
    *, inbound: base.InboundCall, provider: str, now: datetime | None = None
) -> list[VoiceInstruction]:
    """A call arrives: run the number's published flow (or queue it directly without one)."""
    now = now or timezone.now()
    called = phone_or_none(inbound.called) or inbound.called
    caller_e164 = phone_or_none(inbound.caller) or ""
    with transaction.atomic():
        endpoint = (
            Endpoint.objects.select_related("queue")
            .filter(channel=Channel.VOICE, address=called, active=True)
            .first()
        )
        call, created = Call.objects.select_for_update().get_or_create(
            call_sid=inbound.sid,
            defaults={
                "provider": provider,
                "caller": inbound.caller,
                "caller_e164": caller_e164,
                "called": called,
                "endpoint": endpoint,
                "status": inbound.status,
            },
        )
        if not created:  # the provider retried the first request
            return _resume_instructions(call, provider)
        if endpoint is None:
            logger.error("call %s: no active voice endpoint for the number called", inbound.sid)
            call.outcome = CallOutcome.FAILED
            call.save(update_fields=["outcome"])
            return [SayText(_("This number is not in service. Goodbye.")), HangUp()]
        version = published_version_for_endpoint(endpoint.pk)
        context = engine.Context(now=now, caller_known=bool(caller_e164))
        if version is None:
            language = endpoint.queue.language or "fr"
            step = engine.Step(
                (engine.Enqueue(queue="", skills={}, priority=None, language=language),),
                engine.Session(language=language),
            )
        else:
            call.flow_version = version
            step = engine.start(version.graph, context=context)
        return _apply(call, step, provider)


def _resume_instructions(call: Call, provider: str) -> list[VoiceInstruction]:
    if call.outcome == CallOutcome.QUEUED:
        return [RedirectTo(webhook_url(provider, "wait"))]
    if call.outcome == CallOutcome.IN_FLOW and call.flow_version is not None:
        session = engine.Session.from_dict(call.session.get("flow", {}))
        step = engine.ask_again(call.flow_version.graph, session=session)
        return _apply(call, step, provider)
    return [HangUp()]


def do_continue_call(
    *,
    call_sid: str,
    node_id: str,
    attempt: int,
    digits: str,
    provider: str,
    now: datetime | None = None,
) -> list[VoiceInstruction]:
    """The caller answered (or not) the menu ``node_id``."""
    now = now or timezone.now()
    with transaction.atomic():
        call = (
            Call.objects.select_for_update(of=("self",))
            .select_related("flow_version", "endpoint__queue")
            .filter(call_sid=call_sid)
            .first()
        )
        if call is None or call.flow_version is None:
            return [HangUp()]
        session = engine.Session.from_dict(call.session.get("flow", {}))
        if (
            call.outcome != CallOutcome.IN_FLOW
            or session.node_id != node_id
            or session.attempt != attempt
        ):
            return _resume_instructions(call, provider)  # a late or replayed answer
        step = engine.resume(
            call.flow_version.graph,
            session=session,
            user_input=digits,
            context=engine.Context(now=now, caller_known=bool(call.caller_e164)),
        )
        return _apply(call, step, provider)


# --- Waiting -----------------------------------------------------------------------------------
def _minutes_phrase(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    if seconds < 60:
        return _("The estimated waiting time is less than a minute.")
    return ngettext(
        "The estimated waiting time is about %(n)d minute.",
        "The estimated waiting time is about %(n)d minutes.",
        minutes,
    ) % {"n": minutes}


def _wait_instructions(
    call: Call, provider: str, now: datetime | None = None
) -> list[VoiceInstruction]:
    now = now or timezone.now()
    interaction = call.interaction
    hold = call.session.get("hold", {})
    locale = tts_locale(_language(call))
    out: list[VoiceInstruction] = []
    if interaction is not None and interaction.status in WAITING_STATUSES:
        if hold.get("position", True):
            position = queue_position(interaction)
            if position is not None:
                out.append(
                    SayText(
                        _("You are number %(n)d in the queue.") % {"n": position}
                        if position > 1
                        else _("You are next in the queue."),
                        locale,
                    )
                )
        if hold.get("wait", True):
            wait = estimated_wait_seconds(interaction, now=now)
            if wait is not None:
                out.append(SayText(_minutes_phrase(wait), locale))
    music = hold.get("music") or settings.VOICE_HOLD_MUSIC_URL
    if music:
        out.append(PlayAudio(music, loop=settings.VOICE_HOLD_MUSIC_LOOPS))
    else:
        out.append(SayText(_("Please hold, an advisor will answer you shortly."), locale))
        out.append(Pause(settings.VOICE_WAIT_LOOP_SECONDS))
    out.append(RedirectTo(webhook_url(provider, "wait")))
    return out


def do_wait(*, call_sid: str, provider: str, now: datetime | None = None) -> list[VoiceInstruction]:
    """One turn of the waiting loop: position, estimated wait, hold music, and back here."""
    call = Call.objects.select_related("interaction", "endpoint").filter(call_sid=call_sid).first()
    if call is None or call.interaction is None:
        return [HangUp()]
    if call.interaction.status not in (*WAITING_STATUSES, Status.ASSIGNED):
        return [HangUp()]
    with translation.override(_language(call)):
        return _wait_instructions(call, provider, now)


# --- Connecting the agent ----------------------------------------------------------------------
def do_bridge_call(*, interaction_id: int, agent_id: int) -> None:
    """Connect the waiting caller of ``interaction_id`` to agent ``agent_id``'s telework phone.

    The live call (its CallSid is the interaction's ``external_ref``) is redirected through the
    provider's REST API to a dial of ``AgentProfile.telework_phone``; when the agent picks up,
    a short whisper tells them the queue before the caller is connected.

    Raises :class:`NoAgentNumber` when the agent has no number (return the interaction to the
    queue), :class:`CallEnded` when the caller already hung up, :class:`BridgeError` otherwise.
    """
    now = timezone.now()
    interaction = Interaction.objects.select_related("queue").filter(pk=interaction_id).first()
    if interaction is None or interaction.channel != Channel.VOICE or not interaction.external_ref:
        raise BridgeError(f"interaction #{interaction_id} is not a live call")
    call = Call.objects.select_related("endpoint").filter(call_sid=interaction.external_ref).first()
    if call is None:
        raise BridgeError(f"no call {interaction.external_ref} for interaction #{interaction_id}")
    agent = AgentProfile.objects.filter(pk=agent_id).first()
    if agent is None:
        raise BridgeError(f"agent #{agent_id} does not exist")
    if interaction.status != Status.ASSIGNED or interaction.assigned_agent_id != agent_id:
        logger.info("call %s: no longer for agent #%s, not bridged", call.call_sid, agent_id)
        return  # a replayed task, or the caller hung up meanwhile
    if call.agent_id == agent_id and call.outcome in (CallOutcome.BRIDGING, CallOutcome.ANSWERED):
        return  # already rung (a task run twice)
    number = agent.telework_phone
    bridge_no = CallEvent.objects.filter(call=call, kind__startswith="bridge#").count() + 1
    if not number:
        logger.warning(
            "call %s: agent #%s has no telework phone number; the call stays in the queue",
            call.call_sid,
            agent_id,
        )
        _event(call, f"bridge#{bridge_no}:no-number", agent_id=agent_id)
        raise NoAgentNumber(f"agent #{agent_id} has no telework phone number")
    provider = call.provider
    service_number = call.endpoint.address if call.endpoint else call.called
    caller_id = service_number
    if settings.VOICE_BRIDGE_CALLER_ID == "caller" and call.caller_e164:
        caller_id = call.caller_e164
    instructions = get_provider(provider).render_voice(
        [
            DialNumber(
                number=number,
                caller_id=caller_id,
                action_url=webhook_url(
                    provider, "dial", interaction=interaction_id, agent=agent_id
                ),
                timeout_seconds=settings.VOICE_DIAL_TIMEOUT_SECONDS,
                whisper_url=webhook_url(
                    provider, "whisper", interaction=interaction_id, agent=agent_id
                ),
                status_url=webhook_url(provider, "status", agent=agent_id),
                record=settings.VOICE_RECORD_CALLS,
            ),
            HangUp(),
        ]
    )
    try:
        get_backend().update_call(call_sid=call.call_sid, instructions=instructions)
    except base.CallNotInProgress as exc:
        _event(call, f"bridge#{bridge_no}:call-ended", agent_id=agent_id, error=str(exc))
        raise CallEnded(f"call {call.call_sid} is no longer in progress") from exc
    except base.ProviderError as exc:
        _event(call, f"bridge#{bridge_no}:failed", agent_id=agent_id, error=str(exc)[:500])
        raise ProviderFailed(f"the provider did not redirect {call.call_sid}: {exc}") from exc
    Call.objects.filter(pk=call.pk).update(
        agent=agent,
        agent_number=number,
        agent_call_sid="",
        bridge_requested_at=now,
        outcome=CallOutcome.BRIDGING,
    )
    _event(call, f"bridge#{bridge_no}", agent_id=agent_id, number=number)
    _watch_bridge(interaction_id, agent_id, bridge_no)


def _watch_bridge(interaction_id: int, agent_id: int, bridge_no: int) -> None:
    """With a broker, check once the agent's ring time is over that something was heard of
    their phone (:func:`do_check_bridge`); provider callbacks that never come cannot leave the
    caller on hold. (Inline tasks cannot wait: the embedded default relies on the callbacks.)"""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from .tasks import check_bridge

    try:
        check_bridge.apply_async(
            args=(interaction_id, agent_id, bridge_no),
            countdown=settings.VOICE_DIAL_TIMEOUT_SECONDS + settings.VOICE_BRIDGE_GRACE_SECONDS,
        )
    except Exception:
        logger.warning(
            "could not schedule the check of bridge #%s of #%s", bridge_no, interaction_id
        )


def _bridge_failed_message(cause: str) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        if cause in AGENT_UNREACHABLE_STATUSES:
            return _(
                "Your phone did not answer the call: it is back in the queue for another "
                "advisor, and you are paused (missed call)."
            )
        return _(
            "The call could not be put through to your phone (telephony provider error): "
            "it is back in the queue, at the front, and you stay available."
        )


def do_requeue_unreachable(
    *,
    interaction_id: int,
    agent_id: int,
    cause: str = "no_number",
    pause_missed: bool = False,
    message: str = "",
    now: datetime | None = None,
) -> bool:
    """An accepted call could not be connected to the agent: it goes back to its queue, in
    front (``routing.offers.do_requeue_accepted``), never to that agent again when their phone
    failed (the offer becomes ``failed``, which excludes like a decline), not for
    ``ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS`` when the provider did (``cause``
    "provider_error": the offer becomes ``provider``, and a pass is scheduled for when the lapse
    ends).

    The agent is freed and told. ``cause`` "no_number": no telework number, they stop taking
    calls until they set one (``agent.no_phone_number``). Otherwise (``call.bridge_failed``,
    with ``message`` for the console): their phone did not answer (``pause_missed``: paused
    "missed"), or the provider failed (they stay available). Returns whether it was requeued
    (False when the interaction already left that agent: a replayed or late report).
    """
    now = now or timezone.now()
    with transaction.atomic():
        requeued = do_requeue_accepted(
            interaction_id=interaction_id,
            agent_id=agent_id,
            offer_status=(
                OfferStatus.PROVIDER_ERROR if cause == "provider_error" else OfferStatus.FAILED
            ),
            reason="agent_unreachable" if cause == "no_number" else f"bridge_{cause}"[:64],
            now=now,
        )
        if not requeued:
            return False
        # The interaction is locked: the agent's presence after it (rule 1).
        agent = AgentProfile.objects.select_related("presence").get(pk=agent_id)
        if cause == "no_number":
            channels = list(agent.presence.channels_enabled or [])
            if Channel.VOICE in channels:
                do_set_channels(agent=agent, channels=[c for c in channels if c != Channel.VOICE])
            publish(
                *event_catalogue.agent_no_phone_number(
                    agent_id=agent_id, interaction_id=interaction_id
                ),
                groups=[agent_group(agent_id), SUPERVISORS_GROUP],
            )
            return True
        if pause_missed:
            do_pause_missed(agent_id=agent_id, now=now, if_available=True)
        publish(
            *event_catalogue.call_bridge_failed(
                agent_id=agent_id,
                interaction_id=interaction_id,
                reason=cause,
                paused=bool(pause_missed),
                message=message,
            ),
            groups=[agent_group(agent_id), SUPERVISORS_GROUP],
        )
    return True


def do_agent_unreachable(
    *, interaction_id: int, agent_id: int, cause: str, now: datetime | None = None
) -> bool:
    """The caller could not be connected to the agent (``cause``: the agent leg's status, or
    "provider_error"): the call goes back to the queue at the front, the agent is told and
    freed (paused "missed" when their phone did not answer), the next agent is tried."""
    requeued = do_requeue_unreachable(
        interaction_id=interaction_id,
        agent_id=agent_id,
        cause=cause,
        pause_missed=cause in AGENT_UNREACHABLE_STATUSES,
        message=_bridge_failed_message(cause),
        now=now,
    )
    if requeued:
        Call.objects.filter(interaction_id=interaction_id).update(
            outcome=CallOutcome.QUEUED, agent=None
        )
    return requeued


def bridge_retry_countdown(attempt: int) -> float:
    """Seconds before the bridge attempt after ``attempt`` (1-based): the outbound back-off,
    from ``VOICE_BRIDGE_RETRY_SECONDS`` (short: a caller is on hold meanwhile)."""
    return outbound_retry_countdown(attempt, first=settings.VOICE_BRIDGE_RETRY_SECONDS)


def _retry_bridge(interaction_id: int, agent_id: int, attempt: int) -> bool:
    """Send the next bridge attempt to the broker after its wait; False when it cannot wait
    (inline tasks, the embedded default) or the broker refuses: give up at once then."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return False
    from .tasks import bridge_call

    try:
        bridge_call.apply_async(
            args=(interaction_id, agent_id),
            kwargs={"attempt": attempt + 1},
            countdown=bridge_retry_countdown(attempt),
        )
    except Exception:
        logger.warning("could not schedule bridge attempt %s of #%s", attempt + 1, interaction_id)
        return False
    return True


def do_connect_agent(*, interaction_id: int, agent_id: int, attempt: int = 1) -> None:
    """Bridge the call (the ``channels_voice.bridge_call`` task); whatever fails, the caller
    goes back to the queue rather than stay on hold with an agent who never gets the call.

    A provider error (refusal, 5xx, stall past the REST timeouts) is transient: the bridge is
    tried again after ``bridge_retry_countdown`` while the caller keeps their hold music and
    the agent their assignment, up to ``VOICE_BRIDGE_ATTEMPTS`` attempts; after the last, the
    call goes back to the queue at the front and this agent is passed over for a while only
    (``ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS``: the provider, not their phone, failed)."""
    try:
        do_bridge_call(interaction_id=interaction_id, agent_id=agent_id)
    except NoAgentNumber:
        do_requeue_unreachable(interaction_id=interaction_id, agent_id=agent_id)
    except CallEnded:
        pass  # the caller's "completed" status callback closes the interaction
    except ProviderFailed as exc:
        if attempt < settings.VOICE_BRIDGE_ATTEMPTS and _retry_bridge(
            interaction_id, agent_id, attempt
        ):
            logger.warning(
                "bridging interaction %s failed (attempt %s of %s), tried again in %s s: %s",
                interaction_id,
                attempt,
                settings.VOICE_BRIDGE_ATTEMPTS,
                bridge_retry_countdown(attempt),
                exc,
            )
            return
        logger.warning("bridging interaction %s failed: %s", interaction_id, exc)
        do_agent_unreachable(
            interaction_id=interaction_id, agent_id=agent_id, cause="provider_error"
        )
    except Exception:
        logger.exception("bridging interaction %s to agent %s failed", interaction_id, agent_id)
        do_agent_unreachable(
            interaction_id=interaction_id, agent_id=agent_id, cause="provider_error"
        )


def do_check_bridge(*, interaction_id: int, agent_id: int, bridge_no: int) -> bool:
    """The agent's ring time is over: if the bridge ``bridge_no`` is still ringing (no answer,
    no callback), the agent did not answer. Returns whether the call was put back."""
    call = Call.objects.filter(interaction_id=interaction_id).first()
    if (
        call is None
        or call.agent_id != agent_id
        or call.outcome != CallOutcome.BRIDGING
        or call.agent_answered_at is not None
        or call.ended_at is not None
        or CallEvent.objects.filter(call=call, kind__startswith="bridge#").count() != bridge_no
    ):
        return False
    logger.warning("call %s: agent #%s's phone silent past its timeout", call.call_sid, agent_id)
    return do_agent_unreachable(interaction_id=interaction_id, agent_id=agent_id, cause="no-answer")


def _tell_answered(interaction_id: int, agent_id: int | None) -> None:
    """The agent's phone answered: their console says the call is in progress from now on
    (until then it says the call is being connected: the bridge may ring, fail, be retried)."""
    if agent_id is None:
        return
    publish(
        *event_catalogue.call_answered(agent_id=agent_id, interaction_id=interaction_id),
        groups=[agent_group(agent_id), SUPERVISORS_GROUP],
    )


def do_whisper(
    *,
    interaction_id: int,
    agent_leg_sid: str,
    provider: str,
    agent_id: int | None = None,
    now: datetime | None = None,
) -> list[VoiceInstruction]:
    """The agent picked up: note it, and tell the agent (only) which queue the call is from.

    An agent whose bridge was given up (the provider answered too late) and who picks up
    anyway is told the call went to someone else, and their leg hangs up."""
    now = now or timezone.now()
    interaction = (
        Interaction.objects.select_related("queue", "contact").filter(pk=interaction_id).first()
    )
    if interaction is None:
        return [HangUp()]
    if agent_id is not None and (
        interaction.status != Status.ASSIGNED or interaction.assigned_agent_id != agent_id
    ):
        with translation.override(settings.LANGUAGE_CODE):
            text = _("This call is no longer for you. Goodbye.")
            return [SayText(text, tts_locale(settings.LANGUAGE_CODE)), HangUp()]
    call = Call.objects.filter(call_sid=interaction.external_ref).first()
    if call is not None and call.agent_answered_at is None:
        waited = None
        if interaction.queued_at:
            waited = int((now - interaction.queued_at).total_seconds())
        answered = Call.objects.filter(pk=call.pk, agent_answered_at__isnull=True).update(
            agent_answered_at=now,
            agent_call_sid=agent_leg_sid,
            outcome=CallOutcome.ANSWERED,
            wait_seconds=waited,
        )
        _event(call, "answered", agent_leg=agent_leg_sid)
        if answered:
            _tell_answered(interaction.pk, agent_id or call.agent_id)
    queue_name = interaction.queue.name if interaction.queue else ""
    with translation.override(settings.LANGUAGE_CODE):
        text = _("Call from the queue %(queue)s.") % {"queue": queue_name}
        if interaction.contact and interaction.contact.display_name:
            text += " " + _("Citizen: %(name)s.") % {"name": interaction.contact.display_name}
        return [SayText(text, tts_locale(settings.LANGUAGE_CODE))]


def do_dial_ended(
    *,
    interaction_id: int,
    result: base.DialResult,
    provider: str,
    agent_id: int | None = None,
    now: datetime | None = None,
) -> list[VoiceInstruction]:
    """The dial to the agent ended: after a conversation, hang up; if the agent's phone did not
    answer, the caller goes back to waiting (at the front of the queue) and the agent is freed
    (:func:`do_agent_unreachable`). ``agent_id`` is the agent this dial rang (from its URL)."""
    now = now or timezone.now()
    interaction = Interaction.objects.filter(pk=interaction_id).first()
    call = Call.objects.filter(call_sid=interaction.external_ref).first() if interaction else None
    if interaction is None or call is None:
        return [HangUp()]
    if agent_id is None:
        agent_id = call.agent_id
    if not _event(call, f"dial:{agent_id}:{(result.child_sid or '-')[-8:]}:{result.status}"):
        return [HangUp()] if result.status == "completed" else _wait_instructions(call, provider)
    if result.status == "completed" and call.agent_answered_at is not None:
        Call.objects.filter(pk=call.pk).update(
            talk_seconds=result.duration_seconds, outcome=CallOutcome.COMPLETED
        )
        # e.g. the post-call survey ("tapez 1 à 5", surveys), when the queue asks for it
        after = after_conversation(call=call, interaction=interaction, provider=provider)
        return after or [HangUp()]
    logger.info("call %s: agent phone %s", call.call_sid, result.status)  # not the number
    if agent_id is not None:
        do_agent_unreachable(
            interaction_id=interaction.pk,
            agent_id=agent_id,
            cause=result.status if result.status in AGENT_UNREACHABLE_STATUSES else "no-answer",
            now=now,
        )
    call.refresh_from_db()
    with translation.override(_language(call)):
        sorry = SayText(
            _("The advisor is not available. Please hold, we will find another one."),
            tts_locale(_language(call)),
        )
        return [sorry, *_wait_instructions(call, provider, now)]


def do_voicemail_recorded(
    *, call_sid: str, recording: base.Recording, provider: str
) -> list[VoiceInstruction]:
    call = Call.objects.select_related("endpoint__queue").filter(call_sid=call_sid).first()
    if call is None or "voicemail" not in call.session:
        return [HangUp()]
    spec = call.session["voicemail"]
    with translation.override(_language(call)):
        if not recording.duration_seconds:
            return [HangUp()]
        with transaction.atomic():
            _ingest(
                call,
                queue_code=spec.get("queue", ""),
                skills=spec.get("skills", {}),
                priority=spec.get("priority"),
                language=spec.get("language", "fr"),
                subject=_("Voicemail"),
                text=_flow_summary(call),
                attachments=[
                    pending_entry(
                        name=f"voicemail-{recording.sid}",
                        url=recording.url,
                        content_type="audio/mpeg",
                        recording=True,
                        recording_sid=recording.sid,
                        duration_seconds=recording.duration_seconds,
                    )
                ],
            )
            call.outcome = CallOutcome.VOICEMAIL
            call.recording_url = recording.url
            call.save(update_fields=["interaction", "outcome", "recording_url"])
        locale = tts_locale(_language(call))
        return [SayText(_("Thank you, your message has been recorded. Goodbye."), locale), HangUp()]


# --- Status callbacks --------------------------------------------------------------------------
def _end_interaction(call: Call, now: datetime) -> None:
    """The caller's leg ended: a waiting call is abandoned, an answered one goes to wrap-up; a
    callback request or a voicemail stays queued (our own ``<Hangup/>`` ended the call)."""
    if call.interaction_id is None:
        if call.outcome == CallOutcome.IN_FLOW:
            Call.objects.filter(pk=call.pk).update(outcome=CallOutcome.ENDED_IN_FLOW)
        return
    if call.outcome in (CallOutcome.CALLBACK, CallOutcome.VOICEMAIL):
        return  # the request (and its recording) waits for an agent: the call was only its way in
    for _attempt in range(3):
        interaction = Interaction.objects.get(pk=call.interaction_id)
        try:
            if interaction.status in WAITING_STATUSES:
                do_transition_interaction(
                    interaction=interaction, to=Status.ABANDONED, reason="caller_hung_up", now=now
                )
                waited = None
                if interaction.queued_at:
                    waited = int((now - interaction.queued_at).total_seconds())
                Call.objects.filter(pk=call.pk).update(
                    outcome=CallOutcome.ABANDONED, wait_seconds=waited
                )
            elif interaction.status == Status.ASSIGNED:
                do_transition_interaction(
                    interaction=interaction, to=Status.WRAP_UP, reason="call_completed", now=now
                )
                # Hung up while the agent's phone was still ringing: abandoned, for reports.
                answered = call.agent_answered_at is not None
                Call.objects.filter(pk=call.pk).update(
                    outcome=CallOutcome.COMPLETED if answered else CallOutcome.ABANDONED
                )
            return
        except StaleTransition:
            continue  # the router moved it meanwhile: look again
    logger.error("call %s: could not close interaction #%s", call.call_sid, call.interaction_id)


def do_record_call_status(
    *, status: base.CallStatus, agent_id: int | None = None, now: datetime | None = None
) -> bool:
    """Store a call status callback once and apply it. Returns whether it was new.

    ``agent_id`` (from the callback URL of a bridge) is the agent an agent leg rang: a busy,
    unanswered or failed leg puts the call back in the queue and pauses that agent."""
    now = now or timezone.now()
    if status.parent_sid:  # the agent's leg of a bridged call
        call = Call.objects.filter(call_sid=status.parent_sid).first()
        if call is None:
            return False
        if not _event(call, f"agent:{status.sid[-8:]}:{status.status}", sid=status.sid):
            return False
        if status.status in AGENT_UNREACHABLE_STATUSES:
            agent = agent_id if agent_id is not None else call.agent_id
            if agent is not None and call.interaction_id is not None:
                logger.info("call %s: agent leg %s", call.call_sid, status.status)
                do_agent_unreachable(
                    interaction_id=call.interaction_id, agent_id=agent, cause=status.status, now=now
                )
            return True
        if status.status in ("in-progress", "answered"):
            answered = Call.objects.filter(pk=call.pk, agent_answered_at__isnull=True).update(
                agent_answered_at=now, agent_call_sid=status.sid, outcome=CallOutcome.ANSWERED
            )
            if answered and call.interaction_id is not None:
                _tell_answered(
                    call.interaction_id, agent_id if agent_id is not None else call.agent_id
                )
        elif status.status == "completed" and status.duration_seconds is not None:
            Call.objects.filter(pk=call.pk, agent_call_sid=status.sid).update(
                talk_seconds=status.duration_seconds
            )
        return True
    call = Call.objects.filter(call_sid=status.sid).first()
    if call is None:
        logger.info("status %s for unknown call %s", status.status, status.sid)
        return False
    if not _event(call, f"status:{status.status}", sequence=status.sequence):
        return False
    if call.ended_at is not None:
        return True  # already over: a late, out-of-order callback changes nothing
    if status.status not in ENDED_STATUSES:
        Call.objects.filter(pk=call.pk, ended_at__isnull=True).update(status=status.status)
        return True
    with transaction.atomic():
        updated = Call.objects.filter(pk=call.pk, ended_at__isnull=True).update(
            status=status.status, ended_at=now, duration_seconds=status.duration_seconds
        )
        if updated:
            call.refresh_from_db()
            _end_interaction(call, now)
    return True


def ingest_error_instructions(exc: IngestError) -> list[VoiceInstruction]:
    logger.error("call could not be queued: %s", exc)
    return [SayText(_("Sorry, your call cannot be handled right now. Goodbye.")), HangUp()]
