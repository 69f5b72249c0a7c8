"""A fake Twilio REST API for tests, faithful to Twilio's documented formats.

It plugs into the *official* ``twilio.rest.Client`` as its HTTP client
(``TWILIO_HTTP_CLIENT = "channels_inbound.providers.fake.FakeTwilioHttpClient"``), so the real
library builds the requests (form fields ``To``, ``From``, ``Body``, ``StatusCallback``,
``Twiml``) and parses the answers; only the network is replaced. Answers follow the API
reference for Messages and Calls (JSON resources, error bodies with ``code``, ``message``,
``more_info`` and ``status``). Every request is kept in :attr:`FakeTwilioHttpClient.requests`.
Setting :attr:`FakeTwilioHttpClient.outage` to an HTTP status (e.g. 503) makes every request
fail as Twilio does during an incident (error 20500/20503 with that status).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from typing import Any, ClassVar

from django.utils import timezone
from twilio.http import HttpClient
from twilio.http.response import Response

_MESSAGES = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_CALL = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Calls/(CA[0-9a-f]{32})\.json$")


@dataclass(frozen=True)
class FakeRequest:
    method: str
    uri: str
    data: dict[str, Any]
    auth: tuple[str, str] | None


def _error(status: int, code: int, message: str) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(status, json.dumps(body))


class FakeTwilioHttpClient(HttpClient):
    requests: ClassVar[list[FakeRequest]] = []
    ended_calls: ClassVar[set[str]] = set()  # CallSids that are no longer in progress
    unsubscribed: ClassVar[set[str]] = set()  # numbers that replied STOP to the provider
    outage: ClassVar[int] = 0  # an HTTP status (500, 503) every request answers; 0: none
    outage_requests: ClassVar[int] = 0  # the next N requests answer 503, then service resumes
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(logger=logging.getLogger("twilio.fake"), is_async=False)

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.requests.clear()
            cls.ended_calls.clear()
            cls.unsubscribed.clear()
            cls.outage = 0
            cls.outage_requests = 0

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        form = {k: v for k, v in (data or {}).items() if v is not None}
        with self._lock:
            self.requests.append(FakeRequest(method, uri, form, auth))
            outage = self.outage
            if not outage and FakeTwilioHttpClient.outage_requests > 0:
                FakeTwilioHttpClient.outage_requests -= 1
                outage = 503
        now = format_datetime(timezone.now().astimezone(UTC), usegmt=True)
        if outage:
            code = 20503 if outage == 503 else 20500
            return _error(outage, code, "Service Unavailable")
        if match := _MESSAGES.search(uri):
            if method != "POST":
                return _error(405, 20004, "Method not allowed")
            if "To" not in form or ("Body" not in form and "MediaUrl" not in form):
                return _error(400, 21604, "A 'To' phone number is required.")
            if not _E164.match(str(form["To"])):
                return _error(
                    400, 21211, f"The 'To' number {form['To']} is not a valid phone number."
                )
            if form["To"] in self.unsubscribed:
                return _error(400, 21610, "Attempt to send to unsubscribed recipient")
            sid = "SM" + uuid.uuid4().hex
            account = match.group(1)
            resource = {
                "account_sid": account,
                "api_version": "2010-04-01",
                "body": form.get("Body", ""),
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "EUR",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"
                },
                "to": form["To"],
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            }
            return Response(201, json.dumps(resource))
        if match := _CALL.search(uri):
            account, call_sid = match.groups()
            if call_sid in self.ended_calls:
                return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
            resource = {
                "account_sid": account,
                "answered_by": None,
                "api_version": "2010-04-01",
                "caller_name": None,
                "date_created": now,
                "date_updated": now,
                "direction": "inbound",
                "duration": None,
                "end_time": None,
                "forwarded_from": None,
                "from": "+33612345678",
                "from_formatted": "06 12 34 56 78",
                "parent_call_sid": None,
                "phone_number_sid": "PN" + "0" * 32,
                "price": None,
                "price_unit": "EUR",
                "sid": call_sid,
                "start_time": now,
                "status": "in-progress",
                "subresource_uris": {},
                "to": "+33900000001",
                "to_formatted": "09 00 00 00 01",
                "uri": f"/2010-04-01/Accounts/{account}/Calls/{call_sid}.json",
            }
            return Response(200, json.dumps(resource))
        return _error(404, 20404, f"The requested resource {uri} was not found")
