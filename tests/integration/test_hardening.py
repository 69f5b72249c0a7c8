"""Hardening (issue 11): the client address behind trusted proxies only, no open redirect
through ``next``, 400 instead of 500 for NUL characters and malformed filters, /healthz details
for internal callers only, the chat demo page off by default, the insecure secret key refused by
the deploy checks, and ``manage.py serve`` without a prior ``collectstatic``.

(Chat transcripts and SMTP: tests/integration/channels/test_hardening_channels.py; the SMS
length limit and console redirects: tests/integration/console/test_hardening_console.py.)
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from kernel.clientip import client_ip_for_scope, client_ip_from

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Test-2026!"  # the make_user fixture's password
EVIL = ["https://evil.example/", "//evil.example", "///evil.example", "/\\evil.example"]


def _login_attempt(client: Client, username: str, password: str, **meta: str) -> Any:
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        **meta,  # type: ignore[arg-type]
    )


# --- 1. Client address: X-Forwarded-For from trusted proxies only ---------------------------------
def test_the_forwarded_address_is_believed_from_trusted_proxies_only(settings: Any) -> None:
    settings.TRUSTED_PROXIES = []
    assert client_ip_from("203.0.113.7", "198.51.100.1") == "203.0.113.7"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]
    assert client_ip_from("203.0.113.7", "198.51.100.1") == "203.0.113.7"  # untrusted peer
    assert client_ip_from("10.1.2.3", "198.51.100.1") == "198.51.100.1"
    # read from the right: what the client wrote itself (on the left) is never believed
    assert client_ip_from("10.1.2.3", "127.0.0.1, 198.51.100.1") == "198.51.100.1"
    assert client_ip_from("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.0.2.1") == "198.51.100.1"
    assert client_ip_from("10.1.2.3", "garbage, 198.51.100.1:4567") == "198.51.100.1"
    assert client_ip_from("10.1.2.3", "garbage") == "10.1.2.3"
    assert client_ip_from("::ffff:10.1.2.3", "[2001:db8::1]:443") == "2001:db8::1"
    assert client_ip_from(None, "198.51.100.1") is None
    scope = {"client": ("10.0.0.9", 5000), "headers": [(b"x-forwarded-for", b"198.51.100.4")]}
    assert client_ip_for_scope(scope) == "198.51.100.4"
    settings.TRUSTED_PROXIES = []
    assert client_ip_for_scope(scope) == "10.0.0.9"


@pytest.mark.django_db
def test_a_rotating_forged_x_forwarded_for_does_not_escape_the_lockout(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.TRUSTED_PROXIES = []
    make_user("camille")
    client = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login_attempt(client, "camille", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n + 1}")
    response = _login_attempt(client, "camille", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert response.status_code == 429
    from axes.models import AccessAttempt

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_real_client_is_locked_out_not_everyone(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    make_user("camille")
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        # the attacker also forges a header; the proxy appends the address it saw
        _login_attempt(proxy, "camille", "wrong", HTTP_X_FORWARDED_FOR="127.0.0.1, 198.51.100.66")
    locked = _login_attempt(proxy, "camille", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.66")
    assert locked.status_code == 429
    # Camille herself, behind the same proxy from another address, still logs in.
    other = Client(REMOTE_ADDR="10.0.0.2")
    ok = _login_attempt(other, "camille", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.50")
    assert ok.status_code == 302


def test_serve_does_not_let_uvicorn_rewrite_the_peer_address() -> None:
    from contactcentre.management.commands.serve import uvicorn_options

    assert uvicorn_options("127.0.0.1", 8000, 1)["proxy_headers"] is False
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--no-proxy-headers" in dockerfile
    assert "--forwarded-allow-ips" not in dockerfile


# --- 2. No open redirect through next -------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("target", EVIL)
def test_login_and_logout_never_redirect_off_site(
    target: str, make_user: Callable[..., Any]
) -> None:
    make_user("camille")
    client = Client()
    page = client.get("/accounts/login/", {"next": target})
    assert '<input type="hidden" name="next" value="">' in page.content.decode()
    response = client.post(
        "/accounts/login/", {"username": "camille", "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    response = client.post("/accounts/logout/", {"next": target})
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]
    assert response["Location"].startswith("/")


@pytest.mark.django_db
@pytest.mark.parametrize("target", EVIL)
def test_the_language_switch_never_redirects_off_site(target: str) -> None:
    response = Client().post("/i18n/setlang/", {"language": "en", "next": target})
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("target", EVIL)
def test_the_second_factor_pages_never_redirect_off_site(
    target: str, make_user: Callable[..., Any]
) -> None:
    # verify (a supervisor with a device)
    supervisor = make_user("sup", role="supervisor")
    device = TOTPDevice.objects.create(user=supervisor, name="phone", confirmed=True)
    client = Client()
    client.force_login(supervisor)
    page = client.get("/accounts/otp/", {"next": target})
    assert '<input type="hidden" name="next" value="/">' in page.content.decode()
    code = f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"
    response = client.post("/accounts/otp/", {"token": code, "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"
    # enrolment (a supervisor without one)
    newcomer = make_user("sup2", role="supervisor")
    client = Client()
    client.force_login(newcomer)
    page = client.get("/accounts/otp/enrol/", {"next": target})
    assert page.status_code == 200
    assert '<input type="hidden" name="next" value="/">' in page.content.decode()
    device = TOTPDevice.objects.get(user=newcomer)
    code = f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"
    response = client.post("/accounts/otp/enrol/", {"token": code, "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db
def test_the_second_factor_keeps_a_relative_next(make_user: Callable[..., Any]) -> None:
    supervisor = make_user("sup", role="supervisor")
    device = TOTPDevice.objects.create(user=supervisor, name="phone", confirmed=True)
    client = Client()
    client.force_login(supervisor)
    code = f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"
    response = client.post("/accounts/otp/", {"token": code, "next": "/supervision/?a=1"})
    assert response["Location"] == "/supervision/?a=1"


# --- 3. NUL characters and malformed filters: 400, never 500 -------------------------------------
@pytest.fixture
def api_admin(make_user: Callable[..., Any]) -> Client:
    user = make_user("admin", role="administrator", is_superuser=True)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


NUL_REQUESTS = [
    ("get", "/api/v1/interactions/?status=queued%00", None, None),
    ("get", "/api/v1/contacts/?phone=%2B336%0012", None, None),
    ("get", "/supervision/reports/?channel=sms%00", None, None),
    ("get", "/chat/widget/a%00b/config.json", None, None),
    ("get", "/healthz?x=\x00", None, None),
    ("post", "/api/v1/contacts/", '{"display_name": "Awa\\u0000"}', "application/json"),
    ("post", "/api/v1/contacts/", '{"display_name": "Awa", "x": ["\\u0000"]}', "application/json"),
    ("post", "/accounts/login/", "username=a%00b&password=x", "application/x-www-form-urlencoded"),
    ("post", "/accounts/login/", {"username": "a\x00b", "password": "x"}, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "content_type"), NUL_REQUESTS)
def test_a_nul_character_anywhere_is_a_clear_400(
    api_admin: Client, method: str, path: str, body: Any, content_type: str | None
) -> None:
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["data"] = body
    if content_type:
        kwargs["content_type"] = content_type
    response = getattr(api_admin, method)(path, **kwargs)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    text = response.content.decode()
    assert "NUL" in text
    if path.startswith("/api/"):
        assert response.json()["error"] == "nul_character"


@pytest.mark.django_db
def test_json_without_nul_passes_the_filter(api_admin: Client) -> None:
    response = api_admin.post(
        "/api/v1/contacts/",
        json.dumps({"display_name": "Awa \\u0000 (a backslash, not a NUL)"}),
        content_type="application/json",
    )
    assert "nul_character" not in response.content.decode()


BAD_FILTERS = [
    "/api/v1/interactions/?contact=abc",
    "/api/v1/interactions/?contact=99999999999999999999",
    "/api/v1/interactions/?status=nope",
    "/api/v1/interactions/?channel=pigeon",
    "/api/v1/routing-decisions/?interaction=abc",
    "/api/v1/routing-decisions/?interaction=1.5",
    "/api/v1/offers/?status=nope",
    "/api/v1/contacts/?phone=abc",
    "/api/v1/interactions/?limit=abc&offset=x",
    # out of the database's integer range: a bounded page, not a 500
    "/api/v1/interactions/?limit=99999999999999999999",
    "/api/v1/agents/?offset=99999999999999999999",
    "/api/v1/queues/?limit=99999999999999999999&offset=2026-13-45",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", BAD_FILTERS)
def test_malformed_api_filters_are_a_clear_400_not_a_500(api_admin: Client, path: str) -> None:
    from configuration.models import Queue
    from interactions.actions import do_create_interaction

    # some rows, so that a page is actually read from the database
    queue = Queue.objects.get_or_create(code="caf", defaults={"name": "CAF"})[0]
    do_create_interaction(channel="sms", contact=None, queue=queue, subject="Q", enqueue=False)
    response = api_admin.get(path)
    assert response.status_code in {200, 400}, (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert response.json()


SUPERVISION_FILTERS = [
    "/supervision/skills/?team=abc",
    "/supervision/reports/?queue=abc&agent=x&team=y&date_from=notadate",
    "/supervision/reports/?date_from=2026-13-45&date_to=x&format=csv",
    "/supervision/interactions/?queue=abc&agent=x&channel=pigeon&status=x",
    "/supervision/skills/history/?agent=abc&skill=x&since=notadate",
    "/supervision/staffing/?queue=abc&date=notadate",
    "/supervision/what-if/?queue=abc&since=notadate",
    "/supervision/agents/?team=abc&state=x",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", SUPERVISION_FILTERS)
def test_malformed_supervision_filters_never_500(api_admin: Client, path: str) -> None:
    response = api_admin.get(path)
    assert response.status_code < 500, (response.status_code, response.content[:300])


@pytest.mark.django_db
def test_a_malformed_agent_id_in_a_supervisor_form_is_not_a_500(api_admin: Client) -> None:
    from configuration.models import Queue
    from interactions.actions import do_create_interaction

    queue = Queue.objects.get_or_create(code="caf", defaults={"name": "CAF"})[0]
    interaction = do_create_interaction(
        channel="sms", contact=None, queue=queue, subject="Q", enqueue=False
    )
    response = api_admin.post(
        f"/supervision/interactions/{interaction.pk}/reassign/", {"agent": "abc"}
    )
    assert response.status_code == 404


# --- 4. /healthz details for internal callers only -----------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "internal"),
    [
        ("127.0.0.1", None, [], True),
        ("10.0.0.5", None, [], True),
        ("203.0.113.9", None, [], False),
        # a forged header from outside claims to be local
        ("203.0.113.9", "127.0.0.1", [], False),
        # a proxy nobody declared relays a public client: not internal
        ("10.0.0.2", "203.0.113.9", [], False),
        # the declared proxy relays a public client, then an internal one
        ("10.0.0.2", "203.0.113.9", ["10.0.0.2"], False),
        ("10.0.0.2", "192.168.1.20", ["10.0.0.2"], True),
    ],
)
def test_healthz_details_only_for_internal_callers(
    settings: Any, peer: str, forwarded: str | None, trusted: list[str], internal: bool
) -> None:
    settings.TRUSTED_PROXIES = trusted
    meta = {"REMOTE_ADDR": peer}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    response = Client().get("/healthz", **meta)  # type: ignore[arg-type]
    assert response.status_code == 200
    body = response.json()
    if internal:
        assert body["status"] == "ok"
        assert body["checks"]["database"]["ok"] is True
    else:
        assert body == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_failure_is_a_bare_error_outside(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    outside = Client(REMOTE_ADDR="203.0.113.9").get("/healthz")
    assert outside.status_code == 503
    assert outside.json() == {"status": "error"}
    inside = Client(REMOTE_ADDR="127.0.0.1").get("/healthz")
    assert inside.status_code == 503
    assert inside.json()["checks"]["redis"]["ok"] is False


# --- 5. The chat demo page is off unless DEBUG or CHAT_DEMO_PAGE ---------------------------------
@pytest.mark.django_db
def test_the_chat_demo_page_is_off_by_default(settings: Any) -> None:
    settings.DEBUG = False
    settings.CHAT_DEMO_PAGE = False
    assert Client().get("/chat/demo/").status_code == 404
    settings.CHAT_DEMO_PAGE = True
    assert Client().get("/chat/demo/").status_code == 200
    settings.CHAT_DEMO_PAGE = False
    settings.DEBUG = True
    assert Client().get("/chat/demo/").status_code == 200


def test_the_demo_page_setting_defaults_off_and_dev_run_turns_it_on() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CHAT_DEMO_PAGE", "DJANGO_DEBUG"}}
    code = "from django.conf import settings; print(settings.CHAT_DEMO_PAGE, settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "contactcentre.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.split() == ["False", "False"], result.stderr
    import dev

    run_env = dev.run_environment()
    assert run_env["CHAT_DEMO_PAGE"] == "true"
    assert run_env["DJANGO_DEBUG"] == "true"


# --- 7. The insecure secret key is an error of the deploy checks ---------------------------------
def test_the_deploy_checks_refuse_the_development_secret_key(settings: Any) -> None:
    settings.SECRET_KEY = "django-insecure-dev-only-change-me-0123456789abcdefghijklmnop"
    with pytest.raises(SystemCheckError, match=r"contactcentre\.E001"):
        call_command("check", deploy=True)
    settings.SECRET_KEY = "short"
    with pytest.raises(SystemCheckError, match=r"contactcentre\.E001"):
        call_command("check", deploy=True)


def test_a_strong_secret_key_passes(settings: Any) -> None:
    settings.SECRET_KEY = "x7!" + "k3y-for-the-deploy-check-only-" * 3
    from contactcentre.checks import check_secret_key

    assert check_secret_key() == []


def test_malformed_trusted_proxies_are_a_check_error(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.example"]
    with pytest.raises(SystemCheckError, match=r"contactcentre\.E002"):
        call_command("check")


# --- 1 and 8 through the real server: manage.py serve ---------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    url = "postgres://{user}@{host}:{port}/{name}".format(
        user=db.get("USER") or "postgres",
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        name=db["NAME"],
    )
    if db.get("PASSWORD"):
        url = url.replace("@", f":{db['PASSWORD']}@", 1)
    return url


class Served:
    def __init__(self, url: str, static_root: Path) -> None:
        self.url = url
        self.static_root = static_root
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def request(
        self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, headers=headers or {})  # noqa: S310
        try:
            with self.opener.open(req, timeout=30) as response:
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture
def served(
    request: pytest.FixtureRequest, tmp_path: Path, transactional_db: Any
) -> Iterator[Served]:
    """``manage.py serve`` with the production settings (DEBUG off, hashed static files) on the
    test database, a fresh empty STATIC_ROOT, no TRUSTED_PROXIES (indirect parameters: more
    environment)."""
    if not settings.IS_POSTGRES:
        pytest.skip("needs PostgreSQL (the server process shares the test database)")
    port = _free_port()
    static_root = tmp_path / "static"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STATIC_"))},
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE": "false",
        "DJANGO_SECRET_KEY": "x7!" + "k3y-for-the-serve-test-only-" * 3,
        "DATABASE_URL": _database_url(),
        "DATA_DIR": str(tmp_path / "data"),
        "STATIC_ROOT": str(static_root),
        "TRUSTED_PROXIES": "",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        **getattr(request, "param", {}),
    }
    env.pop("REDIS_URL", None)  # embedded: no Celery worker to wait for
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Served(f"http://127.0.0.1:{port}", static_root)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail("serve exited: " + (tmp_path / "serve.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("serve did not answer within 120 s")
                time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.mark.postgres
def test_serve_works_without_a_prior_collectstatic(served: Served) -> None:
    # a fresh STATIC_ROOT: serve collected the files itself; pages and the console's static
    # files answer
    status, page = served.request("/accounts/login/")
    assert status == 200, page[-1500:]
    manifest = json.loads((served.static_root / "staticfiles.json").read_text())["paths"]
    for name in ("console/console.js", "css/app.css"):
        status, _ = served.request(f"/static/{manifest[name]}")
        assert status == 200, name
    stylesheet = re.search(r'href="(/static/css/app\.[0-9a-f]+\.css)"', page)
    assert stylesheet, "the login page names the hashed stylesheet"
    assert served.request(stylesheet.group(1))[0] == 200


@pytest.mark.postgres
@pytest.mark.parametrize("served", [{"STATIC_MANIFEST": "false"}], indirect=True)
def test_serve_keeps_the_real_peer_so_a_forged_header_does_not_escape_the_lockout(
    served: Served, make_user: Callable[..., Any]
) -> None:
    # a rotating forged X-Forwarded-For from the same peer is still one address
    make_user("camille")
    for n in range(settings.AXES_FAILURE_LIMIT + 1):
        served.request("/accounts/login/")
        token = next(str(c.value) for c in served.cookies if c.name == "csrftoken")
        status, _ = served.request(
            "/accounts/login/",
            {"username": "camille", "password": "wrong", "csrfmiddlewaretoken": token},
            headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
        )
    assert status == 429
    from axes.models import AccessAttempt

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}
