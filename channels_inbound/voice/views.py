"""Phone webhooks (``/webhooks/twilio/voice/...``): thin, they parse, call the actions and
render the returned instructions with the provider adapter (TwiML)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _

from channels_inbound.ingest import IngestError
from channels_inbound.providers.base import (
    HangUp,
    Provider,
    SayText,
    VoiceInstruction,
    WebhookError,
)
from channels_inbound.providers.webhooks import markup, provider_webhook
from channels_inbound.sms.spool import DATABASE_OUTAGE

from . import actions

logger = logging.getLogger("channels_inbound.webhooks")

ProviderView = Callable[[HttpRequest, Provider], HttpResponse]


def _render(provider: Provider, instructions: list[VoiceInstruction]) -> HttpResponse:
    return markup(provider, provider.render_voice(instructions))


def outage_instructions() -> list[VoiceInstruction]:
    """What a caller hears while the database cannot be reached: a short apology asking them to
    call back, instead of the provider's generic application error. In French: the number's
    language is in the database."""
    with translation.override("fr"):
        text = _(
            "Our service is temporarily unavailable. Please call back in a few minutes. Goodbye."
        )
    return [SayText(text, language="fr-FR"), HangUp()]


def polite_when_database_down(view: ProviderView) -> ProviderView:
    """A caller-facing webhook answers :func:`outage_instructions` (200) instead of a 500 when
    the database is unreachable (PostgreSQL down or restarting, the pool's wait run out)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, provider: Provider) -> HttpResponse:
        try:
            return view(request, provider)
        except DATABASE_OUTAGE as exc:
            logger.warning(
                "database unavailable, %s answered call back later: %s", request.path, exc
            )
            return _render(provider, outage_instructions())

    return wrapper


def _query_int(request: HttpRequest, name: str) -> int:
    try:
        return int(request.GET.get(name, ""))
    except ValueError:
        raise WebhookError(f"query parameter {name!r} must be a number") from None


def _query_agent(request: HttpRequest) -> int | None:
    """The agent a bridge's callback URL names (absent from URLs made before it was added)."""
    return _query_int(request, "agent") if "agent" in request.GET else None


@provider_webhook
@polite_when_database_down
def voice_incoming(request: HttpRequest, provider: Provider) -> HttpResponse:
    call = provider.parse_call(request.POST)
    try:
        instructions = actions.do_start_call(inbound=call, provider=provider.name)
    except IngestError as exc:
        instructions = actions.ingest_error_instructions(exc)
    return _render(provider, instructions)


@provider_webhook
@polite_when_database_down
def voice_gather(request: HttpRequest, provider: Provider) -> HttpResponse:
    digits = provider.parse_digits(request.POST)
    node = request.GET.get("node", "")
    if not node:
        raise WebhookError("query parameter 'node' is required")
    try:
        instructions = actions.do_continue_call(
            call_sid=str(request.POST["CallSid"]),
            node_id=node,
            attempt=_query_int(request, "attempt"),
            digits=digits,
            provider=provider.name,
        )
    except IngestError as exc:
        instructions = actions.ingest_error_instructions(exc)
    return _render(provider, instructions)


@provider_webhook
@polite_when_database_down
def voice_wait(request: HttpRequest, provider: Provider) -> HttpResponse:
    call = provider.parse_call_status(request.POST)
    return _render(provider, actions.do_wait(call_sid=call.sid, provider=provider.name))


@provider_webhook
def voice_whisper(request: HttpRequest, provider: Provider) -> HttpResponse:
    leg = provider.parse_call_status(request.POST)
    instructions = actions.do_whisper(
        interaction_id=_query_int(request, "interaction"),
        agent_leg_sid=leg.sid,
        provider=provider.name,
        agent_id=_query_agent(request),
    )
    return _render(provider, instructions)


@provider_webhook
@polite_when_database_down
def voice_dial(request: HttpRequest, provider: Provider) -> HttpResponse:
    result = provider.parse_dial_result(request.POST)
    instructions = actions.do_dial_ended(
        interaction_id=_query_int(request, "interaction"),
        result=result,
        provider=provider.name,
        agent_id=_query_agent(request),
    )
    return _render(provider, instructions)


@provider_webhook
@polite_when_database_down
def voice_recording(request: HttpRequest, provider: Provider) -> HttpResponse:
    recording = provider.parse_recording(request.POST)
    instructions = actions.do_voicemail_recorded(
        call_sid=str(request.POST["CallSid"]), recording=recording, provider=provider.name
    )
    return _render(provider, instructions)


@provider_webhook
def voice_status(request: HttpRequest, provider: Provider) -> HttpResponse:
    actions.do_record_call_status(
        status=provider.parse_call_status(request.POST), agent_id=_query_agent(request)
    )
    return _render(provider, [])
