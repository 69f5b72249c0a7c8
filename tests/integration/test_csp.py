"""Content-Security-Policy and Permissions-Policy on every page: the headers, the nonce (fresh
per response, carried by every inline script and style), and pages free of inline handlers."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from kernel.middleware import build_permissions_policy

pytestmark = pytest.mark.django_db

# Script types a browser runs (the others, such as json_script's application/json, are data).
SCRIPT_TYPES = {"", "text/javascript", "application/javascript", "module"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction"}


class _PageParts(HTMLParser):
    """The inline scripts and styles of a page, and what CSP would block outside them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inline_scripts: list[dict[str, str]] = []
        self.styles: list[dict[str, str]] = []
        self.blocked: list[str] = []  # inline handlers, style attributes, javascript: URLs

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and "src" not in values:
            if values.get("type", "").lower() in SCRIPT_TYPES:
                self.inline_scripts.append(values)
        elif tag == "style":
            self.styles.append(values)
        for name, value in values.items():
            if name.startswith("on") or name == "style":
                self.blocked.append(f"<{tag} {name}=…>")
            elif name in URL_ATTRIBUTES and value.strip().lower().startswith("javascript:"):
                self.blocked.append(f"<{tag} {name}={value}>")


def parse(html: str) -> _PageParts:
    parts = _PageParts()
    parts.feed(html)
    parts.close()
    return parts


def directives(header: str) -> dict[str, list[str]]:
    policy: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            policy[words[0]] = words[1:]
    return policy


def header_nonce(policy: dict[str, list[str]]) -> str | None:
    for source in policy.get("script-src", []):
        match = re.fullmatch(r"'nonce-(.+)'", source)
        if match:
            return match.group(1)
    return None


def check_page(response: Any) -> dict[str, list[str]]:
    """The page's headers are ours, and everything inline on it is allowed by them."""
    assert response.status_code == 200, response.status_code
    header = response.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy header"
    policy = directives(header)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"][0] == "'self'"
    assert policy["style-src"][0] == "'self'"
    for directive in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in policy[directive]
        assert "'unsafe-eval'" not in policy[directive]
        assert "'unsafe-hashes'" not in policy[directive]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]

    permissions = response.get("Permissions-Policy", "")
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in permissions

    nonce = header_nonce(policy)
    parts = parse(response.content.decode())
    assert parts.blocked == []
    for element in parts.inline_scripts + parts.styles:
        assert nonce is not None, "an inline script or style on a page without a nonce"
        assert element.get("nonce") == nonce
    if nonce:
        assert f"'nonce-{nonce}'" in policy["style-src"]
    return policy


def verified(client: Client, user: Any) -> Client:
    """A member of the (sole) organisation, logged in, second factor passed."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from organisations.models import Membership

    Membership.objects.get_or_create(user=user)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def centre(make_user: Callable[..., Any]) -> dict[str, Any]:
    from agents.models import AgentSkill
    from configuration.models import Queue, QueueSkill, Skill, Team
    from flows.models import Flow

    team = Team.objects.create(name="Prestations")
    rsa = Skill.objects.create(code="rsa", name="RSA")
    caf = Queue.objects.create(code="caf", name="CAF", team=team)
    QueueSkill.objects.create(queue=caf, skill=rsa, min_level=1)
    alice = make_user("alice", first_name="Alice")
    AgentSkill.objects.create(agent=alice.agent_profile, skill=rsa, level=3)
    flow = Flow.objects.create(name="Accueil")
    return {"alice": alice, "queue": caf, "flow": flow, "team": team}


@pytest.fixture
def supervisor_client(centre: dict[str, Any], make_user: Callable[..., Any]) -> Client:
    """The supervisor of the centre's team."""
    sophie = make_user("sophie", role="supervisor")
    centre["team"].supervisors.add(sophie)
    return verified(Client(), sophie)


def test_login_and_second_factor_pages(make_user: Callable[..., Any]) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    check_page(Client().get("/accounts/login/"))
    enrolling = Client()
    enrolling.force_login(make_user("nadia", role="supervisor"))
    check_page(enrolling.get("/accounts/otp/enrol/"))  # with its QR code (inline SVG)
    enrolled = make_user("yann", role="supervisor")
    TOTPDevice.objects.create(user=enrolled, name="phone", confirmed=True)
    client = Client()
    client.force_login(enrolled)
    check_page(client.get("/accounts/otp/"))


def test_agent_console(centre: dict[str, Any]) -> None:
    client = Client()
    client.force_login(centre["alice"])
    check_page(client.get("/console/"))
    check_page(client.get("/console/settings/"))


@pytest.mark.parametrize(
    "path",
    [
        "/supervision/",
        "/supervision/agents/",
        "/supervision/interactions/",
        "/supervision/skills/",
        "/supervision/skills/history/",
        "/supervision/queues/",
        "/supervision/reports/",
        "/supervision/staffing/",
        "/supervision/what-if/",
        "/supervision/flows/",
    ],
)
def test_supervision_pages(path: str, centre: dict[str, Any], supervisor_client: Client) -> None:
    check_page(supervisor_client.get(path))


def test_queue_settings_and_flow_editor(centre: dict[str, Any], supervisor_client: Client) -> None:
    check_page(supervisor_client.get(f"/supervision/queues/{centre['queue'].pk}/"))
    check_page(supervisor_client.get(f"/supervision/flows/{centre['flow'].pk}/"))


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/configuration/queue/", "/admin/configuration/queue/add/", "QUEUE"]
)
def test_admin(path: str, centre: dict[str, Any], supervisor_client: Client) -> None:
    if path == "QUEUE":
        path = f"/admin/configuration/queue/{centre['queue'].pk}/change/"
    check_page(supervisor_client.get(path))


def test_chat_demo_page(settings: Any) -> None:
    from tests.integration.channels.chat_helpers import make_widget

    settings.CHAT_DEMO_PAGE = True
    make_widget()
    response = Client().get("/chat/demo/")
    check_page(response)
    assert "/static/chat/widget.js" in response.content.decode()


def test_api_docs_carry_a_fresh_nonce_per_response() -> None:
    """Swagger UI starts with an inline script: it runs under the nonce, a new one each time."""
    nonces = []
    for _ in range(2):
        response = Client().get("/api/v1/docs/")
        policy = check_page(response)
        nonce = header_nonce(policy)
        assert nonce is not None
        parts = parse(response.content.decode())
        assert len(parts.inline_scripts) == 1
        assert parts.inline_scripts[0]["nonce"] == nonce
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    assert len(nonces[0]) >= 22  # 128 random bits, base64


@pytest.mark.parametrize(
    "path", ["/api/v1/", "/api/v1/queues/", "QUEUE", "/api/v1/presence/", "/api/v1/agents/"]
)
def test_browsable_api(path: str, centre: dict[str, Any], supervisor_client: Client) -> None:
    """DRF's HTML pages: the highlighting style under the nonce, no style attribute left."""
    if path == "QUEUE":
        path = f"/api/v1/queues/{centre['queue'].pk}/"
    response = supervisor_client.get(path, HTTP_ACCEPT="text/html")
    assert response["Content-Type"].startswith("text/html")
    check_page(response)
    if path == "/api/v1/presence/":  # its "Extra Actions" menu lost its style attribute
        assert 'id="extra-actions-menu"' in response.content.decode()


def test_a_page_without_inline_code_names_no_nonce() -> None:
    policy = check_page(Client().get("/accounts/login/"))
    assert header_nonce(policy) is None
    assert not any(s.startswith("'nonce-") for s in policy["style-src"])


@pytest.mark.parametrize("path", ["/healthz", "/no-such-page/", "/api/v1/queues/"])
def test_permissions_policy_on_other_responses(path: str) -> None:
    response = Client().get(path)
    assert "camera=()" in response["Permissions-Policy"]
    assert "microphone=()" in response["Permissions-Policy"]


def test_build_permissions_policy() -> None:
    assert build_permissions_policy({}) == ""
    assert (
        build_permissions_policy(
            {"camera": [], "fullscreen": ["self"], "payment": ["self", "https://pay.example.fr"]}
        )
        == 'camera=(), fullscreen=(self), payment=(self "https://pay.example.fr")'
    )
