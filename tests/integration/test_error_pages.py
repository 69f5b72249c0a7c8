"""The site's own error pages, in French first and English: what happened and a way back."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.utils import translation

pytestmark = pytest.mark.django_db


def test_an_unknown_address_gets_the_sites_404_page_in_french_and_english() -> None:
    french = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/cette-page-n-existe-pas/")
    assert french.status_code == 404
    text = french.content.decode()
    assert "Page introuvable" in text
    assert "Revenir à ma page d’accueil" in text
    assert 'lang="fr"' in text
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get("/no-such-page/")
    assert "Page not found" in english.content.decode()


def test_a_refused_page_explains_itself(make_user: Any) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(make_user("camille", "agent"))
    page = client.get("/privacy/")  # the data-protection officer's pages
    assert page.status_code == 403
    text = page.content.decode()
    assert "Accès refusé" in text
    assert "superviseur" in text


def test_the_500_page_renders_without_any_request_context() -> None:
    with translation.override("fr"):
        html = render_to_string("500.html")  # as Django's handler does: no request, no user
    assert "Une erreur est survenue" in html
    assert "Rien de ce que vous aviez déjà envoyé n’est perdu" in html


def test_a_refused_page_in_english(make_user: Any) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(make_user("camille", "agent"))
    page = client.get("/privacy/")
    assert page.status_code == 403
    text = page.content.decode()
    assert "Access refused" in text
    assert "Back to my home page" in text
    assert 'lang="en"' in text


@pytest.mark.parametrize(
    ("language", "title", "back"),
    [
        ("fr", "Une erreur est survenue", "Revenir à ma page d’accueil"),
        ("en", "Something went wrong", "Back to my home page"),
    ],
)
def test_djangos_500_handler_serves_the_sites_page_in_both_languages(
    language: str, title: str, back: str
) -> None:
    from django.test import RequestFactory
    from django.views.defaults import server_error

    with translation.override(language):
        response = server_error(RequestFactory().get("/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert title in html
    assert back in html
    assert f'lang="{language}"' in html
