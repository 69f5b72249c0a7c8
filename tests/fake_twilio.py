"""A fake Twilio REST API for tests, faithful to Twilio's documented formats.

It plugs into the *official* ``twilio.rest.Client`` as its HTTP client
(``TWILIO_HTTP_CLIENT = "tests.fake_twilio.FakeTwilioHttpClient"``), so the real
library builds the requests (form fields ``To``, ``From``, ``Body``, ``StatusCallback``,
``Twiml``) and parses the answers; only the network is replaced. Answers follow the API
reference for Messages and Calls (JSON resources, error bodies with ``code``, ``message``,
``more_info`` and ``status``). Every request is kept in :attr:`FakeTwilioHttpClient.requests`.
Setting :attr:`FakeTwilioHttpClient.outage` to an HTTP status (e.g. 503) makes every request
fail as Twilio does during an incident (error 20500/20503 with that status).

:class:`FakeMediaServer` serves media the way Twilio documents them, over real HTTP on loopback
(media are downloaded with ``requests``, not through the REST client): MMS media
(``/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}``) and recordings
(``.../Recordings/{RecordingSid}``, WAV, or MP3 with ``.mp3`` appended) answer 401 without the
account's HTTP Basic credentials ("Media is protected"), 404 when unknown, and otherwise
redirect (307 for media, 302 for recordings) to a temporary storage address on another host
name, which serves the bytes with their content type and, like a pre-signed S3 address, refuses
a request that also carries an ``Authorization`` header.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

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


# --- Media and recordings over HTTP ------------------------------------------------------------
_MEDIA = re.compile(
    r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages/([MS]M[0-9a-f]{32})/Media/(ME[0-9a-f]{32})$"
)
_RECORDING = re.compile(
    r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Recordings/(RE[0-9a-f]{32})(\.mp3|\.wav)?$"
)


@dataclass(frozen=True)
class MediaRequest:
    host: str
    path: str
    authorization: str  # the header as sent ("" when absent)
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass
class _Stored:
    content: bytes
    content_type: str


@dataclass
class FakeMediaServer:
    """Twilio's media and recording addresses on ``http://127.0.0.1:<port>`` (the API host) and
    their temporary storage on ``http://localhost:<port>`` (another host name, as Twilio's
    storage is: a client must not send the account's credentials there).

    Faults, each for the next N API requests: :attr:`outage_requests` (503, Twilio error 20503),
    :attr:`drop_requests` (the connection closed without an answer), :attr:`not_ready_requests`
    (a recording still being processed: 404), :attr:`expired_storage_requests` (the storage
    address already expired: 403), :attr:`stall_requests` (answered only after
    :attr:`stall_seconds`: a stalled provider)."""

    account_sid: str
    auth_token: str
    requests: list[MediaRequest] = field(default_factory=list)
    outage_requests: int = 0
    drop_requests: int = 0
    not_ready_requests: int = 0
    stall_requests: int = 0
    expired_storage_requests: int = 0  # storage answers 403 "Request has expired" N times
    stall_seconds: float = 5.0
    _media: dict[str, _Stored] = field(default_factory=dict)  # API path -> bytes
    _recordings: dict[str, tuple[_Stored, _Stored]] = field(default_factory=dict)  # (wav, mp3)
    _storage: dict[str, _Stored] = field(default_factory=dict)  # storage token -> bytes
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- life cycle
    def start(self) -> FakeMediaServer:
        server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server = server
        threading.Thread(target=server.serve_forever, name="fake-media", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def api_origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_origin(self) -> str:
        return f"http://localhost:{self.port}"

    # --- content
    def add_media(self, message_sid: str, content: bytes, content_type: str) -> str:
        """Store a medium of ``message_sid``; returns its ``MediaUrl`` as a webhook carries it."""
        media_sid = "ME" + uuid.uuid4().hex
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"
        with self._lock:
            self._media[path] = _Stored(content, content_type)
        return self.api_origin + path

    def add_recording(self, recording_sid: str, *, wav: bytes, mp3: bytes) -> str:
        """Store a recording in both formats; returns its ``RecordingUrl`` (no extension)."""
        path = f"/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"
        with self._lock:
            self._recordings[path] = (_Stored(wav, "audio/x-wav"), _Stored(mp3, "audio/mpeg"))
        return self.api_origin + path

    def api_requests(self) -> list[MediaRequest]:
        return [r for r in self.requests if not r.path.startswith("/storage/")]

    def storage_requests(self) -> list[MediaRequest]:
        return [r for r in self.requests if r.path.startswith("/storage/")]

    # --- answers: (status, headers, body)
    def answer(
        self, host: str, path: str, authorization: str
    ) -> tuple[int, dict[str, str], bytes] | None:
        with self._lock:
            self.requests.append(MediaRequest(host, path, authorization, time.monotonic()))
        if path.startswith("/storage/"):
            return self._storage_answer(path, authorization)
        with self._lock:
            stall = self.stall_requests > 0
            self.stall_requests -= 1 if stall else 0
        if stall:
            time.sleep(self.stall_seconds)
        with self._lock:
            if self.drop_requests > 0:
                self.drop_requests -= 1
                return None
            if self.outage_requests > 0:
                self.outage_requests -= 1
                return _json_error(503, 20503, "Service Unavailable")
        if not self._authorized(authorization):
            status, headers, body = _json_error(401, 20003, "Authenticate")
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return status, headers, body
        stored, redirect = self._find(path)
        if stored is None:
            return _json_error(404, 20404, f"The requested resource {path} was not found")
        token = uuid.uuid4().hex
        with self._lock:
            self._storage[token] = stored
        location = (
            f"{self.storage_origin}/storage/{token}"
            f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=14400&X-Amz-Signature={token[:16]}"
        )
        return redirect, {"Location": location, "Content-Length": "0"}, b""

    def _authorized(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def _find(self, path: str) -> tuple[_Stored | None, int]:
        with self._lock:
            if _MEDIA.match(path):
                return self._media.get(path), 307
            match = _RECORDING.match(path)
            if match:
                formats = self._recordings.get(path[: len(path) - len(match.group(3) or "")])
                if formats is None:
                    return None, 302
                if self.not_ready_requests > 0:
                    self.not_ready_requests -= 1
                    return None, 302
                return formats[1] if match.group(3) == ".mp3" else formats[0], 302
        return None, 404

    def _storage_answer(self, path: str, authorization: str) -> tuple[int, dict[str, str], bytes]:
        token = urlsplit(path).path.rsplit("/", 1)[-1]
        if authorization:
            return _xml_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
            )
        with self._lock:
            stored = self._storage.get(token)
            if self.expired_storage_requests > 0:
                self.expired_storage_requests -= 1
                stored = None
        if stored is None:
            return _xml_error(403, "AccessDenied", "Request has expired")
        headers = {"Content-Type": stored.content_type, "Content-Length": str(len(stored.content))}
        return 200, headers, stored.content


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a stalled answer: expected, not worth a traceback


def _json_error(status: int, code: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    ).encode()
    return status, {"Content-Type": "application/json"}, body


def _xml_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    return status, {"Content-Type": "application/xml"}, body


def _handler(server: FakeMediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = server.answer(
                self.headers.get("Host", ""), self.path, self.headers.get("Authorization", "")
            )
            if answer is None:  # a dropped connection: no status line at all
                self.close_connection = True
                return
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
