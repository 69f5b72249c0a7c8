"""The fake provider for SMS and phone tests.

Webhooks are built from captured Twilio field sets (tests/fixtures/twilio), signed with the
official ``RequestValidator`` for the public URL, and posted form-encoded as Twilio does. The
REST side is the official ``twilio.rest.Client`` talking to ``FakeTwilioHttpClient``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.db import connection
from django.test import Client
from twilio.request_validator import RequestValidator

from interactions.models import Message
from tests.fake_twilio import FakeTwilioHttpClient

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "twilio"
PUBLIC = "https://contact.example.gouv.fr"
ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "12345678901234567890123456789012"


def payload(name: str, **overrides: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def parse_twiml(text: str | bytes) -> ET.Element:
    """TwiML is our own output here, parsed to assert on its structure."""
    return ET.fromstring(text)  # noqa: S314


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def xml(self) -> ET.Element:
        assert self.content_type.startswith("text/xml"), self.content_type
        return parse_twiml(self.body)


class FakeTwilio:
    """Posts signed webhooks like Twilio does."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def post(
        self,
        url: str,
        params: dict[str, str],
        *,
        signature: str | None = "auto",
        signed_url: str | None = None,
    ) -> Reply:
        """``url`` is a path or a public URL (as found in TwiML); it is signed as public."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        public_url = signed_url or PUBLIC + path
        headers = {}
        if signature == "auto":
            headers["HTTP_X_TWILIO_SIGNATURE"] = sign(public_url, params)
        elif signature is not None:
            headers["HTTP_X_TWILIO_SIGNATURE"] = signature
        response = self.client.post(
            path,
            data=urlencode(params),
            content_type="application/x-www-form-urlencoded",
            **headers,  # type: ignore[arg-type]
        )
        return Reply(response.status_code, response.content, response.get("Content-Type", ""))


@pytest.fixture
def telephony(settings: Any) -> Iterator[None]:
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_AUTH_TOKEN_PREVIOUS = ""
    settings.TELEPHONY_BACKEND = "channels_inbound.providers.twilio.TwilioBackend"
    settings.TWILIO_HTTP_CLIENT = "tests.fake_twilio.FakeTwilioHttpClient"
    settings.VOICE_HOLD_MUSIC_URL = ""
    # Media are never fetched from the real provider (test_media.py serves its own on loopback).
    settings.PROVIDER_MEDIA_ORIGINS = []
    settings.LANGUAGE_CODE = "fr"
    FakeTwilioHttpClient.reset()
    yield
    FakeTwilioHttpClient.reset()


@pytest.fixture
def twilio(telephony: None, client: Client) -> FakeTwilio:
    return FakeTwilio(client)


def say_texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter("Say")]


@pytest.fixture
def refused_text(db: Any) -> str:
    """PostgreSQL refuses to store a message with this text (a trigger raising an error): a
    delivery that breaks a statement of the batch, as a corrupt row would."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (a trigger)")
    text = "REFUSED BY THE DATABASE"
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_message() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF NEW.text = '{text}' THEN RAISE EXCEPTION 'refused row'; END IF;"
            " RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER test_refuse_message BEFORE INSERT ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION test_refuse_message()"
        )
    return text  # the test's transaction rolls the trigger back
