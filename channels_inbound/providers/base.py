"""The provider adapter: what the SMS and phone channels need from a CPaaS or operator gateway.

Two halves, selected by two settings (like Django's e-mail backends):

- :class:`Provider` (``TELEPHONY_PROVIDER``) speaks the provider's *webhook dialect*: it checks
  a request's signature, turns the posted fields into the neutral dataclasses below (raising
  :class:`WebhookError` with a clear message when a required field is missing), and renders the
  neutral voice instructions (:class:`VoiceInstruction`) as the provider's markup (TwiML).
- :class:`Backend` (``TELEPHONY_BACKEND``) makes the *outgoing* calls to the provider's REST API:
  send an SMS, redirect a live call to new instructions. Development backends print or write
  files instead.

Everything the channels do goes through these two, so another provider is one module.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class WebhookError(ValueError):
    """The request is not a well-formed webhook (the message says which field is wrong)."""


class ProviderError(Exception):
    """The provider's API refused or failed a request."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        self.code = code
        self.status = status
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or did not answer in time (connection refused, connect
    or read timeout): a transient failure, nothing is known to have been done."""


class CallNotInProgress(ProviderError):
    """The live call to redirect has already ended."""


class RecipientOptedOut(ProviderError):
    """The provider refuses to message a recipient who opted out (STOP)."""


class Params(Protocol):
    """A request's form fields (Django's QueryDict, or a plain dict of strings)."""

    def get(self, key: str, default: Any = ...) -> Any: ...

    def __contains__(self, key: object) -> bool: ...


# --- What webhooks carry, provider-neutral ---------------------------------------------------
@dataclass(frozen=True)
class InboundSms:
    sid: str
    account_sid: str
    sender: str
    recipient: str
    body: str
    media: list[dict[str, str]] = field(default_factory=list)  # [{"url", "content_type"}]


@dataclass(frozen=True)
class MessageStatus:
    sid: str
    status: str
    error_code: str = ""


@dataclass(frozen=True)
class InboundCall:
    sid: str
    account_sid: str
    caller: str  # as sent: may be a withheld marker ("anonymous", "+266696687"...)
    called: str
    status: str
    direction: str


@dataclass(frozen=True)
class CallStatus:
    sid: str
    status: str
    parent_sid: str = ""
    duration_seconds: int | None = None
    sequence: int | None = None


@dataclass(frozen=True)
class DialResult:
    status: str  # completed, busy, no-answer, failed, canceled
    child_sid: str = ""
    duration_seconds: int | None = None


@dataclass(frozen=True)
class Recording:
    url: str
    sid: str
    duration_seconds: int | None


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str


# --- Voice instructions, provider-neutral ------------------------------------------------------
@dataclass(frozen=True)
class SayText:
    text: str
    language: str = "fr-FR"
    loop: int = 1


@dataclass(frozen=True)
class PlayAudio:
    url: str
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    seconds: int


@dataclass(frozen=True)
class GatherDigits:
    action_url: str
    prompts: Sequence[SayText | PlayAudio]
    timeout_seconds: int = 6
    num_digits: int = 1


@dataclass(frozen=True)
class RedirectTo:
    url: str


@dataclass(frozen=True)
class RecordMessage:
    action_url: str
    max_seconds: int
    status_url: str = ""


@dataclass(frozen=True)
class DialNumber:
    number: str
    caller_id: str = ""
    action_url: str = ""
    timeout_seconds: int = 20
    whisper_url: str = ""  # instructions played to the called party before bridging
    status_url: str = ""
    record: bool = False


@dataclass(frozen=True)
class HangUp:
    pass


VoiceInstruction = (
    SayText | PlayAudio | Pause | GatherDigits | RedirectTo | RecordMessage | DialNumber | HangUp
)


class Provider(abc.ABC):
    """A provider's webhook dialect."""

    name: str = ""
    voice_content_type = "text/xml"

    @abc.abstractmethod
    def validate_request(self, *, url: str, params: Params, headers: Mapping[str, str]) -> bool:
        """Whether the request was signed by the provider for this exact public ``url``."""

    @abc.abstractmethod
    def parse_sms(self, params: Params) -> InboundSms: ...

    @abc.abstractmethod
    def parse_message_status(self, params: Params) -> MessageStatus: ...

    @abc.abstractmethod
    def parse_call(self, params: Params) -> InboundCall: ...

    @abc.abstractmethod
    def parse_call_status(self, params: Params) -> CallStatus: ...

    @abc.abstractmethod
    def parse_digits(self, params: Params) -> str: ...

    @abc.abstractmethod
    def parse_dial_result(self, params: Params) -> DialResult: ...

    @abc.abstractmethod
    def parse_recording(self, params: Params) -> Recording: ...

    @abc.abstractmethod
    def render_voice(self, instructions: Sequence[VoiceInstruction]) -> str: ...

    @abc.abstractmethod
    def render_sms_reply(self, text: str | None) -> str: ...


class Backend(abc.ABC):
    """Outgoing requests to the provider's REST API."""

    @abc.abstractmethod
    def send_sms(self, *, to: str, from_: str, body: str, status_callback: str) -> SentMessage: ...

    @abc.abstractmethod
    def update_call(self, *, call_sid: str, instructions: str) -> None:
        """Replace what a live call is doing with ``instructions`` (rendered markup)."""


# French typography puts a non-breaking space before « : ; ? ! » (the catalogues are checked for
# it), but neither U+00A0 nor the narrow U+202F is in the GSM 03.38 alphabet: one of them in an
# SMS switches the whole message to UCS-2, 70 characters a segment instead of 160. SMS bodies go
# out with ordinary spaces instead (the line break they prevent means nothing on a phone).
_SMS_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " "})


def sms_text(body: str) -> str:
    """``body`` as sent by SMS: non-breaking spaces become ordinary ones (GSM-7 stays GSM-7)."""
    return body.translate(_SMS_SPACES)
