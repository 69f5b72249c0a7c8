"""The SMS acknowledgement (off by default: one more SMS each): a new conversation on a number
that asks for it gets "received" and the "follow my request" link, once; never after STOP."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from channels_inbound.models import Endpoint
from channels_inbound.sms import actions
from channels_inbound.sms.models import OutboundSms, SmsOptOut
from configuration.models import Queue

from .conftest import PUBLIC, FakeTwilio
from .test_sms_batch import OTHER_NUMBER, OUR_NUMBER, post

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


@pytest.fixture
def numbers(db: Any) -> tuple[Endpoint, Endpoint]:
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    acknowledging = Endpoint.objects.create(
        channel="sms", address=OUR_NUMBER, name="CAF", queue=queue, acknowledge=True
    )
    quiet = Endpoint.objects.create(channel="sms", address=OTHER_NUMBER, name="CAF 2", queue=queue)
    return acknowledging, quiet


def test_a_new_conversation_is_acknowledged_once_with_its_follow_link(
    numbers: tuple[Endpoint, Endpoint],
    twilio: FakeTwilio,
    django_capture_on_commit_callbacks: Any,
) -> None:
    post(twilio, 1, "+33611111111", "Bonjour, où en est mon RSA ?")
    post(twilio, 2, "+33611111111", "Je précise : dossier de mars.")
    post(twilio, 3, "+33622222222", "Bonjour", to=OTHER_NUMBER)  # a number that does not ask
    post(twilio, 4, "+33633333333", "Bonjour", to=OUR_NUMBER)
    SmsOptOut.objects.create(phone="+33633333333")  # who sent STOP meanwhile
    with django_capture_on_commit_callbacks(execute=True):
        actions.do_ingest_pending_sms()

    acks = list(OutboundSms.objects.all())
    assert [a.to for a in acks] == ["+33611111111"]  # once, and only where asked
    text = acks[0].body
    assert "CAF" in text
    assert "reçu" in text
    assert f"{PUBLIC}/suivi/" in text  # the public address webhooks are signed with
