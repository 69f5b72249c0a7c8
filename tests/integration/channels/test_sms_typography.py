"""French typography in SMS: the catalogues put non-breaking spaces before « : ; ? ! », but one
such space in an SMS would switch the whole message to UCS-2 (70 characters a segment instead
of 160): the provider receives ordinary spaces."""

from __future__ import annotations

import pytest

from channels_inbound.providers import get_backend
from tests.fake_twilio import FakeTwilioHttpClient

pytestmark = pytest.mark.django_db


def test_an_sms_goes_out_with_ordinary_spaces_so_it_stays_gsm_7(telephony: None) -> None:
    body = (
        "Votre demande est enregistrée\u00a0: référence CAF-42. "
        "Une question\u202f? Répondez ici\u00a0!"
    )

    sent = get_backend().send_sms(
        to="+33612345678", from_="+33900000000", body=body, status_callback=""
    )

    assert sent.sid.startswith("SM")
    posted = [r for r in FakeTwilioHttpClient.requests if r.uri.endswith("/Messages.json")]
    assert posted[-1].data["Body"] == (
        "Votre demande est enregistrée : référence CAF-42. Une question ? Répondez ici !"
    )
