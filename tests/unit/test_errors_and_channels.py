"""The one error family and the one channel list (issue 16)."""

from __future__ import annotations

from django.apps import apps
from django.utils import translation

from contacts.actions import IdentityRemovalRefused
from interactions import models as interaction_models
from interactions.channels import Channel
from kernel.errors import HTTP_STATUS, ApplicationError, ErrorKind, SingleCodeError
from routing.errors import OfferNotPending, OfferNotYours, TransferError


def _all_subclasses(cls: type[SingleCodeError]) -> list[type[SingleCodeError]]:
    found: list[type[SingleCodeError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def test_each_kind_answers_its_status() -> None:
    assert {kind: HTTP_STATUS[kind] for kind in ErrorKind} == {
        ErrorKind.INVALID: 400,
        ErrorKind.FORBIDDEN: 403,
        ErrorKind.NOT_FOUND: 404,
        ErrorKind.CONFLICT: 409,
        ErrorKind.GONE: 410,
    }
    assert OfferNotPending("gone").http_status == 409
    assert OfferNotYours("not yours").http_status == 403
    assert TransferError("no_room", "full").http_status == 409
    assert TransferError("note_too_long", "long").http_status == 400


def test_a_refusal_code_gives_its_kind_and_the_message_a_person_reads() -> None:
    refused = IdentityRemovalRefused("not_found", "no identity #3")
    assert (refused.code, refused.http_status, refused.detail) == (
        "not_found",
        404,
        "no identity #3",
    )
    with translation.override("en"):
        assert str(refused) == "This identity is no longer on this record."
    with translation.override("fr"):
        assert str(refused) == "Cette identité n’est plus sur cette fiche."
    assert IdentityRemovalRefused("in_use", "busy").http_status == 409


def test_every_single_code_error_of_the_apps_has_its_own_code() -> None:
    assert apps.ready
    classes = [c for c in _all_subclasses(SingleCodeError) if "default_code" in vars(c)]
    codes = [c.default_code for c in classes]
    assert len(classes) >= 8  # presence, configuration, contacts, organisations, offers...
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(issubclass(c, ApplicationError) for c in classes)


def test_the_model_choices_are_the_channel_enum() -> None:
    assert [c.value for c in interaction_models.Channel] == [c.value for c in Channel]
    assert Channel.VOICE == "voice"
    assert f"{Channel.SMS}" == "sms"


def test_the_channels_refusals_are_of_the_family_with_their_words() -> None:
    from channels_inbound.chat.errors import ChatError
    from channels_inbound.chat.strings import widget_strings
    from channels_inbound.sms.actions import SmsError, SmsOptedOut, SmsTooLong
    from surveys.actions import SurveyError

    refusals = [SmsOptedOut(), SmsTooLong(1700, 1600), ChatError("ended"), SurveyError("expired")]
    assert all(isinstance(r, ApplicationError) for r in refusals)
    assert [(r.code, r.http_status) for r in refusals] == [
        ("opted_out", 409),
        ("too_long", 400),
        ("ended", 409),
        ("expired", 410),
    ]
    assert (SmsError("empty").http_status, SurveyError("invalid").http_status) == (400, 404)
    assert ChatError("origin_not_allowed").http_status == 403
    with translation.override("fr"):
        assert str(SmsOptedOut()).startswith("Cet usager a répondu STOP")
        # the widget shows the chat's own message for a refusal's code
        assert widget_strings("fr")["error_ended"] == str(ChatError("ended"))
        assert str(ChatError("ended")).startswith("Cette conversation est terminée")
    assert widget_strings("en")["error_ended"] == (
        "This conversation is over. Start a new one to write to us."
    )
