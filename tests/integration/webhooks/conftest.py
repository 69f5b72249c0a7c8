"""A real HTTP receiver on loopback for the webhook tests, and two organisations."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers the status codes it is
    given in turn (the last one again and again), after ``delay`` seconds."""

    def __init__(self, answers: tuple[int, ...] = (200,), delay: float = 0.0) -> None:
        self.received: list[Received] = []
        self.answers = list(answers)
        self.delay = delay
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    status = (
                        receiver.answers.pop(0)
                        if len(receiver.answers) > 1
                        else receiver.answers[0]
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/centre?source=cc"

    def events(self) -> list[str]:
        return [r.json["event"] for r in self.received]

    def wait_for(self, count: int, seconds: float = 30.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return True
            time.sleep(0.05)
        return len(self.received) >= count

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_receiver() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(answers: tuple[int, ...] = (200,), delay: float = 0.0) -> Receiver:
        server = Receiver(answers, delay)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def hook_settings(settings: Any) -> Any:
    """Loopback targets allowed (as in development), short waits between attempts."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    settings.WEBHOOK_RETRY_BACKOFF_S = 0.05
    settings.WEBHOOK_RETRY_MAX_BACKOFF_S = 0.2
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 20
    settings.WEBHOOK_CONNECT_TIMEOUT_S = 2.0
    settings.WEBHOOK_TIMEOUT_S = 3.0
    return settings


@dataclass
class Body:
    org: Any
    queue: Any
    agent: Any
    admin: Any


def _body(tag: str, slug: str, make_user: Any) -> Body:
    from agents.models import AgentProfile
    from configuration.models import Queue, Team
    from organisations.models import Membership, Organisation

    org = Organisation.objects.create(name=f"Organisme {tag}", slug=slug)
    team = Team.objects.create(organisation=org, name=f"Équipe {tag}")
    queue = Queue.objects.create(organisation=org, code="general", name=f"File {tag}", team=team)
    agent_user = make_user(f"{slug}-agent", "agent", profile=False)
    Membership.objects.create(user=agent_user, organisation=org)
    agent = AgentProfile.objects.create(
        organisation=org, user=agent_user, team=team, languages=["fr"]
    )
    admin = make_user(f"{slug}-admin", "administrator", profile=False)
    Membership.objects.create(user=admin, organisation=org)
    return Body(org, queue, agent, admin)


@pytest.fixture
def bodies(make_user: Any) -> tuple[Body, Body]:
    return _body("CAF", "caf", make_user), _body("Mairie", "mairie", make_user)
