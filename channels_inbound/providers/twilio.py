"""Twilio and Twilio-compatible gateways: webhook dialect and REST backend.

Signatures are checked with the official ``twilio.request_validator.RequestValidator`` against
the public URL the provider was configured with (``PUBLIC_BASE_URL`` + path and query: behind a
reverse proxy the URL Django sees is not the one that was signed). TwiML is built with
``twilio.twiml`` (which escapes text); characters XML 1.0 forbids are removed first, so no text
from a caller or a flow can break the document. The REST backend is ``twilio.rest.Client``;
``TWILIO_API_BASE_URL`` points it at a Twilio-compatible operator gateway. Every REST call has a
connect and a read timeout (``PROVIDER_CONNECT_TIMEOUT_S``, ``PROVIDER_READ_TIMEOUT_S``): a
provider that refuses or stalls raises :class:`ProviderUnavailable` within them, instead of
holding a worker process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from django.conf import settings
from django.utils.module_loading import import_string
from requests import RequestException
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from .base import (
    Backend,
    CallNotInProgress,
    CallStatus,
    DialNumber,
    DialResult,
    GatherDigits,
    HangUp,
    InboundCall,
    InboundSms,
    MessageStatus,
    Params,
    Pause,
    PlayAudio,
    Provider,
    ProviderError,
    ProviderUnavailable,
    RecipientOptedOut,
    Recording,
    RecordMessage,
    RedirectTo,
    SayText,
    SentMessage,
    VoiceInstruction,
    WebhookError,
    sms_text,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_MEDIA = 10  # Twilio sends at most 10 media per message
# Characters XML 1.0 does not allow: ElementTree would write them and break the document.
_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
# Twilio REST error codes we act on.
ERROR_CALL_NOT_IN_PROGRESS = 21220
ERROR_UNSUBSCRIBED_RECIPIENT = 21610


def xml_text(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _field(params: Params, name: str, *, required: bool = True, max_length: int = 0) -> str:
    value = params.get(name)
    if value is None:
        if required:
            raise WebhookError(f"missing field {name!r}")
        return ""
    text = str(value).replace("\x00", "")  # PostgreSQL text cannot hold NUL
    if max_length and len(text) > max_length:
        raise WebhookError(f"field {name!r} is longer than {max_length} characters")
    return text


def _require(params: Params, *names: str) -> None:
    missing = [name for name in names if params.get(name) is None]
    if missing:
        raise WebhookError("missing field(s): " + ", ".join(missing))


def _sid(params: Params, name: str) -> str:
    value = _field(params, name)
    if not _SID.match(value):
        raise WebhookError(f"field {name!r} is not a provider id (two letters and 32 hex digits)")
    return value


def _int_or_none(params: Params, name: str) -> int | None:
    value = params.get(name)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        raise WebhookError(f"field {name!r} is not a number") from None


class TwilioProvider(Provider):
    name = "twilio"

    def _tokens(self) -> list[str]:
        return [t for t in (settings.TWILIO_AUTH_TOKEN, settings.TWILIO_AUTH_TOKEN_PREVIOUS) if t]

    def validate_request(self, *, url: str, params: Params, headers: Mapping[str, str]) -> bool:
        signature = headers.get(SIGNATURE_HEADER, "")
        if not signature:
            return False
        return any(
            RequestValidator(token).validate(url, params, signature) for token in self._tokens()
        )

    def parse_sms(self, params: Params) -> InboundSms:
        _require(params, "MessageSid", "AccountSid", "From", "To", "Body")
        try:
            count = min(int(params.get("NumMedia") or 0), MAX_MEDIA)
        except ValueError:
            raise WebhookError("field 'NumMedia' is not a number") from None
        media = [
            {
                "url": _field(params, f"MediaUrl{i}", max_length=2000),
                "content_type": _field(params, f"MediaContentType{i}", required=False),
            }
            for i in range(count)
        ]
        return InboundSms(
            sid=_sid(params, "MessageSid"),
            account_sid=_field(params, "AccountSid", max_length=64),
            sender=_field(params, "From", max_length=64),
            recipient=_field(params, "To", max_length=64),
            body=_field(params, "Body", max_length=settings.SMS_MAX_BODY_CHARS),
            media=media,
        )

    def parse_message_status(self, params: Params) -> MessageStatus:
        _require(params, "MessageSid", "MessageStatus")
        return MessageStatus(
            sid=_sid(params, "MessageSid"),
            status=_field(params, "MessageStatus", max_length=20).lower(),
            error_code=_field(params, "ErrorCode", required=False, max_length=10),
        )

    def parse_call(self, params: Params) -> InboundCall:
        _require(params, "CallSid", "AccountSid", "From", "To")
        return InboundCall(
            sid=_sid(params, "CallSid"),
            account_sid=_field(params, "AccountSid", max_length=64),
            caller=_field(params, "From", max_length=64),
            called=_field(params, "To", max_length=64),
            status=_field(params, "CallStatus", required=False, max_length=20),
            direction=_field(params, "Direction", required=False, max_length=20),
        )

    def parse_call_status(self, params: Params) -> CallStatus:
        _require(params, "CallSid", "CallStatus")
        return CallStatus(
            sid=_sid(params, "CallSid"),
            status=_field(params, "CallStatus", max_length=20).lower(),
            parent_sid=_field(params, "ParentCallSid", required=False, max_length=34),
            duration_seconds=_int_or_none(params, "CallDuration"),
            sequence=_int_or_none(params, "SequenceNumber"),
        )

    def parse_digits(self, params: Params) -> str:
        _require(params, "CallSid")
        return _field(params, "Digits", required=False, max_length=32)

    def parse_dial_result(self, params: Params) -> DialResult:
        _require(params, "CallSid", "DialCallStatus")
        return DialResult(
            status=_field(params, "DialCallStatus", max_length=20).lower(),
            child_sid=_field(params, "DialCallSid", required=False, max_length=34),
            duration_seconds=_int_or_none(params, "DialCallDuration"),
        )

    def parse_recording(self, params: Params) -> Recording:
        _require(params, "CallSid", "RecordingUrl", "RecordingSid")
        return Recording(
            url=_field(params, "RecordingUrl", max_length=2000),
            sid=_field(params, "RecordingSid", max_length=34),
            duration_seconds=_int_or_none(params, "RecordingDuration"),
        )

    # --- TwiML --------------------------------------------------------------------------------
    def _say_kwargs(self, say: SayText) -> dict[str, object]:
        kwargs: dict[str, object] = {"language": say.language}
        voice = settings.VOICE_TTS_VOICES.get(say.language) or settings.VOICE_TTS_VOICE
        if voice:
            kwargs["voice"] = voice
        if say.loop != 1:
            kwargs["loop"] = say.loop
        return kwargs

    def render_voice(self, instructions: Sequence[VoiceInstruction]) -> str:
        response = VoiceResponse()
        for item in instructions:
            if isinstance(item, SayText):
                response.say(xml_text(item.text), **self._say_kwargs(item))
            elif isinstance(item, PlayAudio):
                response.play(xml_text(item.url), loop=item.loop)
            elif isinstance(item, Pause):
                response.pause(length=item.seconds)
            elif isinstance(item, GatherDigits):
                gather = Gather(
                    action=item.action_url,
                    method="POST",
                    input="dtmf",
                    num_digits=item.num_digits,
                    timeout=item.timeout_seconds,
                )
                for prompt in item.prompts:
                    if isinstance(prompt, SayText):
                        gather.say(xml_text(prompt.text), **self._say_kwargs(prompt))
                    else:
                        gather.play(xml_text(prompt.url), loop=prompt.loop)
                response.append(gather)
            elif isinstance(item, RedirectTo):
                response.redirect(item.url, method="POST")
            elif isinstance(item, RecordMessage):
                response.record(
                    action=item.action_url,
                    method="POST",
                    max_length=item.max_seconds,
                    play_beep=True,
                    finish_on_key="#",
                    recording_status_callback=item.status_url or None,
                )
            elif isinstance(item, DialNumber):
                dial = Dial(
                    caller_id=item.caller_id or None,
                    action=item.action_url or None,
                    method="POST",
                    timeout=item.timeout_seconds,
                    record="record-from-answer-dual" if item.record else "do-not-record",
                )
                dial.number(
                    item.number,
                    url=item.whisper_url or None,
                    method="POST",
                    status_callback=item.status_url or None,
                    status_callback_event=(
                        "initiated ringing answered completed" if item.status_url else None
                    ),
                    status_callback_method="POST" if item.status_url else None,
                )
                response.append(dial)
            elif isinstance(item, HangUp):
                response.hangup()
        return str(response.to_xml())

    def render_sms_reply(self, text: str | None) -> str:
        response = MessagingResponse()
        if text:
            response.message(xml_text(text))
        return str(response.to_xml())


class TimeoutHttpClient(TwilioHttpClient):
    """The library's HTTP client (``requests``) with a (connect, read) timeout on every call."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(timeout=read_timeout)
        # requests takes a (connect, read) pair; the library passes it through unchanged.
        self.timeout = (connect_timeout, read_timeout)


class TwilioBackend(Backend):
    """The provider's REST API through the official client."""

    def __init__(self) -> None:
        http_client: object
        if settings.TWILIO_HTTP_CLIENT:
            http_client = import_string(settings.TWILIO_HTTP_CLIENT)()
        else:
            http_client = TimeoutHttpClient(
                connect_timeout=float(settings.PROVIDER_CONNECT_TIMEOUT_S),
                read_timeout=float(settings.PROVIDER_READ_TIMEOUT_S),
            )
        self.client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=http_client,
        )
        if settings.TWILIO_API_BASE_URL:
            self.client.api.base_url = settings.TWILIO_API_BASE_URL

    def send_sms(self, *, to: str, from_: str, body: str, status_callback: str) -> SentMessage:
        try:
            message = self.client.messages.create(
                to=to,
                from_=from_,
                body=sms_text(body),
                status_callback=status_callback or None,
            )
        except TwilioRestException as exc:
            if exc.code == ERROR_UNSUBSCRIBED_RECIPIENT:
                raise RecipientOptedOut(exc.msg, code=exc.code, status=exc.status) from exc
            raise ProviderError(str(exc.msg), code=exc.code, status=exc.status) from exc
        except RequestException as exc:
            raise ProviderUnavailable(f"provider unreachable: {exc}") from exc
        return SentMessage(sid=str(message.sid), status=str(message.status or "queued"))

    def update_call(self, *, call_sid: str, instructions: str) -> None:
        try:
            self.client.calls(call_sid).update(twiml=instructions)
        except TwilioRestException as exc:
            if exc.code == ERROR_CALL_NOT_IN_PROGRESS or exc.status == 404:
                raise CallNotInProgress(exc.msg, code=exc.code, status=exc.status) from exc
            raise ProviderError(str(exc.msg), code=exc.code, status=exc.status) from exc
        except RequestException as exc:
            raise ProviderUnavailable(f"provider unreachable: {exc}") from exc
