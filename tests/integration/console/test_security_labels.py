"""The second-factor (django-otp) and lockout (django-axes) admin pages speak French to French
users (issue 15: no English in French pages), with French typography, and the labels given
to django-otp at start-up (console/third_party_labels.py) change nothing in the migrations."""

from __future__ import annotations

import re
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import translation
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db

MODELS = (TOTPDevice, AccessAttempt, AccessLog, AccessFailureLog)
SAME_IN_BOTH = {"ID", "t0"}  # words that are the same in French and English
FRENCH_PUNCTUATION = re.compile(r"(?<!\u00a0)(?<!\u202f)[:;?!]")


def _labels(model: Any) -> list[str]:
    meta = model._meta
    found = [str(meta.verbose_name), str(meta.verbose_name_plural)]
    for field in meta.get_fields():
        if getattr(field, "verbose_name", None):
            found.append(str(field.verbose_name))
        if getattr(field, "help_text", ""):
            found.append(str(field.help_text))
    return found


def test_every_label_of_the_second_factor_and_lockout_models_is_french() -> None:
    for model in MODELS:
        with translation.override("en"):
            english = _labels(model)
        with translation.override("fr"):
            french = _labels(model)
        for en, fr in zip(english, french, strict=True):
            assert fr != en or en in SAME_IN_BOTH, f"{model.__name__}: {en!r} is not translated"
            assert not FRENCH_PUNCTUATION.search(fr.replace("https:", "")), fr
    with translation.override("fr"):
        assert str(AccessLog._meta.verbose_name) == "connexion"  # not the privacy access log


def _admin_client() -> Client:
    root = get_user_model().objects.create_superuser("root", "root@example.fr", "pw-Root-2026!")
    device = TOTPDevice.objects.create(user=root, name="téléphone", confirmed=True)
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(root)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_the_admin_pages_of_the_second_factor_and_lockouts_are_in_french() -> None:
    client = _admin_client()
    AccessAttempt.objects.create(
        username="root",
        ip_address="192.0.2.1",
        user_agent="Firefox",
        http_accept="*/*",
        path_info="/accounts/login/",
        get_data="",
        post_data="",
        failures_since_start=2,
    )
    AccessLog.objects.create(
        username="root", ip_address="192.0.2.1", user_agent="Firefox", path_info="/"
    )

    index = _page(client, "/admin/")
    for french in ("Second facteur (TOTP)", "Verrouillages de connexion"):
        assert french in index
    for english in ("Otp_Totp", "TOTP devices", ">Axes<", "Access attempts"):
        assert english not in index

    devices = _page(client, "/admin/otp_totp/totpdevice/")
    for french in ("Utilisateur", "Créé le", "Dernière utilisation le", "Confirmé"):
        assert french in devices, french
    for english in ("Last used at", "Created at", "Confirmed", "Select TOTP device"):
        assert english not in devices, english

    device = TOTPDevice.objects.get()
    form = _page(client, f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    for french in (
        "Identité",
        "Limitation des essais",
        "L’intervalle de temps en secondes.",
        "Cet appareil est-il prêt à l’emploi\u00a0?",
    ):
        assert french in form, french
    for english in ("Throttling", "Timestamps", "The time step in seconds.", "Is this device"):
        assert english not in form, english

    attempts = _page(client, "/admin/axes/accessattempt/")
    for french in ("Navigateur (User-Agent)", "État du verrouillage", "3 tentative(s) restante(s)"):
        assert french in attempts, french
    for english in ("User Agent", "Attempt Remaining", "Lockout status"):
        assert english not in attempts, english

    logins = _page(client, "/admin/axes/accesslog/")
    assert "connexions" in logins.lower()
    assert "journal des accès" not in logins.lower()  # that is the privacy app's access log


def test_the_translated_labels_change_nothing_in_the_migrations() -> None:
    call_command("makemigrations", "otp_totp", "axes", check=True, dry_run=True, verbosity=0)
