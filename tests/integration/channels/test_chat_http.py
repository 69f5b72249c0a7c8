"""The widget's HTTP side: its configuration read cross-origin, the demo page, the script."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from channels_inbound.chat.models import ChatWidget

from .chat_helpers import KEY, ORIGIN, make_widget

pytestmark = pytest.mark.django_db


@pytest.fixture
def widget(db: Any) -> ChatWidget:
    return make_widget()


def test_the_configuration_is_french_by_default_and_open_to_the_configured_origin(
    widget: ChatWidget, client: Client
) -> None:
    response = client.get(f"/chat/widget/{KEY}/config.json", HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response["Vary"]
    data = response.json()
    assert data["language"] == "fr"
    assert data["title"] == "Mairie d'Exemple"
    assert data["socket_path"] == f"/ws/chat/{KEY}/"
    assert [t["label"] for t in data["topics"]] == ["État civil", "Urbanisme"]
    assert data["strings"]["launcher"] == "Discuter avec un conseiller"
    assert data["strings"]["position"] == "Votre position dans la file d'attente\u00a0: {n}."
    assert all(value for value in data["strings"].values())


def test_the_configuration_in_english(widget: ChatWidget, client: Client) -> None:
    data = client.get(f"/chat/widget/{KEY}/config.json?lang=en", HTTP_ORIGIN=ORIGIN).json()
    assert data["language"] == "en"
    assert data["strings"]["launcher"] == "Chat with an adviser"
    assert [t["label"] for t in data["topics"]] == ["Civil status", "Urbanisme"]
    # an unknown language falls back to French
    data = client.get(f"/chat/widget/{KEY}/config.json?lang=xx", HTTP_ORIGIN=ORIGIN).json()
    assert data["language"] == "fr"


def test_the_configuration_refuses_other_origins_and_unknown_widgets(
    widget: ChatWidget, client: Client
) -> None:
    refused = client.get(f"/chat/widget/{KEY}/config.json", HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused
    assert client.get("/chat/widget/nope/config.json", HTTP_ORIGIN=ORIGIN).status_code == 404


def test_the_demo_page_embeds_the_widget_with_its_snippet(
    widget: ChatWidget, client: Client, settings: Any
) -> None:
    settings.CHAT_DEMO_PAGE = True
    page = client.get("/chat/demo/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<html lang="fr">' in html
    snippet = f'src="http://testserver/static/chat/widget.js" data-widget="{KEY}" data-lang="fr"'
    assert snippet in html
    assert "Code d&#x27;intégration" in html or "Code d'intégration" in html
    english = client.get(f"/chat/demo/?widget={KEY}&lang=en").content.decode()
    assert '<html lang="en">' in english
    assert 'data-lang="en"' in english


def test_the_demo_page_can_be_switched_off(
    widget: ChatWidget, client: Client, settings: Any
) -> None:
    settings.CHAT_DEMO_PAGE = False
    assert client.get("/chat/demo/").status_code == 404


def test_the_widget_files_are_static_files(client: Client) -> None:
    assert finders.find("chat/widget.js")
    assert finders.find("chat/widget.css")
    script = client.get("/static/chat/widget.js")
    assert script.status_code == 200
    body = b"".join(script.streaming_content)  # type: ignore[attr-defined]
    assert b"attachShadow" in body


def test_the_demo_data_has_a_chat_widget_with_a_bot(client: Client, settings: Any) -> None:
    settings.CHAT_DEMO_PAGE = True
    from channels_inbound.chat.demo import DEMO_KEY, create_demo_widget
    from configuration.models import Queue, Skill
    from flows.selectors import published_version_for_endpoint

    # The bot's flow names the mairie's skills: published only where they exist.
    for code in ("mairie-etat-civil", "mairie-ecoles"):
        Skill.objects.create(code=code, name=code)
    widget = create_demo_widget(Queue.objects.create(code="mairie-etat-civil", name="Mairie"))
    assert published_version_for_endpoint(widget.endpoint_id) is not None
    page = client.get("/chat/demo/").content.decode()
    assert f'data-widget="{DEMO_KEY}"' in page
    data = client.get(f"/chat/widget/{DEMO_KEY}/config.json").json()
    assert [t["label"] for t in data["topics"]] == ["État civil", "Écoles", "Autre"]
