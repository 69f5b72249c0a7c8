"""Pages, health, settings and demo data as an operator sees them."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from tests.support import celery_broker, clear_broker, redis_db_url, start_workers, stop_workers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_login_page_speaks_french_first_and_english_on_request() -> None:
    french = Client().get("/accounts/login/")
    assert french.status_code == 200
    assert 'lang="fr"' in french.content.decode()
    assert "Se connecter" in french.content.decode()
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get("/accounts/login/")
    assert 'lang="en"' in english.content.decode()
    assert "Log in" in english.content.decode()


@pytest.mark.django_db
def test_home_needs_a_login_and_then_takes_the_agent_to_the_console(make_user: Any) -> None:
    client = Client()
    assert client.get("/")["Location"].startswith("/accounts/login/")
    client.force_login(make_user("camille", "agent", first_name="Camille"))
    page = client.get("/", follow=True)
    assert page.redirect_chain[-1][0] == "/console/"
    assert page.status_code == 200


@pytest.mark.django_db
def test_admin_is_for_staff_with_a_second_factor(make_user: Any) -> None:
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client()
    supervisor = make_user("nadia", "supervisor")
    client.force_login(supervisor)
    # A supervisor without a verified second factor is sent to enrol one first.
    response = client.get("/admin/configuration/queue/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/otp/")
    device = TOTPDevice.objects.create(user=supervisor, name="phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert client.get("/admin/configuration/queue/").status_code == 200
    assert client.get("/admin/agents/agentprofile/").status_code == 200
    client.force_login(make_user("camille", "agent"))
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_pages_name_the_sites_icon_and_favicon_ico_leads_to_it() -> None:
    import re

    from django.contrib.staticfiles import finders

    client = Client()
    # the login page names its icon (browsers then do not ask for /favicon.ico)
    page = client.get("/accounts/login/").content.decode()
    found = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert found is not None
    # a page that names none (the API's) makes the browser ask /favicon.ico: the same icon,
    # not a 404 logged on every page load
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == found.group(1)
    assert "max-age=86400" in response["Cache-Control"]
    assert finders.find("img/favicon.svg") is not None


@pytest.mark.django_db
def test_healthz_reports_each_dependency() -> None:
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["vendor"] == (
        "postgresql" if settings.IS_POSTGRES else "sqlite"
    )
    if settings.REDIS_URL:
        assert "ms" in body["checks"]["redis"]


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_unreachable(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


@pytest.mark.redis
@pytest.mark.django_db
def test_healthz_sees_a_real_celery_worker_and_its_absence(settings: Any) -> None:
    broker = redis_db_url(1)
    clear_broker(broker)
    with celery_broker(broker, settings):
        # No worker on this broker yet: the health check says so.
        response = Client().get("/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["celery"] == {"ok": False, "workers": 0}
        workers = start_workers(1, broker)
        try:
            response = Client().get("/healthz")
            assert response.status_code == 200, response.json()
            assert response.json()["checks"]["celery"]["workers"] == 1
        finally:
            stop_workers(workers)


def test_production_settings_pass_the_deploy_checks() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x7!" + "k3y-for-the-deploy-check-only-" * 3,
        "DJANGO_ALLOWED_HOSTS": "contact.mairie-exemple.fr",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://contact.mairie-exemple.fr",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_debug_defaults_off_and_the_dev_key_is_refused_by_the_deploy_checks() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stdout + result.stderr


def test_celery_is_configured_for_safe_redelivery() -> None:
    from contactcentre.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]


@pytest.mark.django_db
def test_demo_data_is_created_once_with_logins_printed() -> None:
    out = StringIO()
    call_command("demo", stdout=out)
    text = out.getvalue()
    assert "camille.martin" in text
    assert "supervisor" in text
    from agents.models import AgentProfile
    from configuration.models import Queue
    from interactions.models import Interaction

    assert AgentProfile.objects.filter(user__groups__name="agent").count() == 12
    assert Queue.objects.filter(code="prefecture-sejour").exists()
    assert Interaction.objects.filter(status="queued").exists()
    assert Interaction.objects.filter(status="closed", channel="voice").exists()
    # A waiting call is a caller on hold with the provider: demo data has none to bridge.
    assert not Interaction.objects.filter(status="queued", channel="voice").exists()
    # Each body has a mailbox: mail sent to the mairie's lands in the mairie's queue.
    from channels_inbound.email.inbound import do_ingest_email

    raw = (
        b"From: Lea Petit <lea.petit@example.org>\r\nTo: etat-civil@mairie.example.fr\r\n"
        b"Subject: Acte de naissance\r\nMessage-ID: <demo-1@example.org>\r\n\r\nBonjour\r\n"
    )
    result = do_ingest_email(raw, recipients=["etat-civil@mairie.example.fr"], via_smtp=True)
    mail = Interaction.objects.get(pk=result.interaction_id)
    assert mail.queue is not None
    assert mail.queue.code == "mairie-etat-civil"
    again = StringIO()
    call_command("demo", if_empty=True, stdout=again)
    assert "already present" in again.getvalue()
    assert AgentProfile.objects.filter(user__groups__name="agent").count() == 12
    # The printed password works.
    line = next(li for li in text.splitlines() if "camille.martin" in li)
    password = line.split()[-1]
    # (through the login form: django-axes needs the request to count failures)
    response = Client().post(
        "/accounts/login/", {"username": "camille.martin", "password": password}
    )
    assert response.status_code == 302
