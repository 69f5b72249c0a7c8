"""A demonstration widget: the mairie's web chat with topics and a small bot.

Created with the demo data (``manage.py demo``) so ``/chat/demo/`` works on a fresh machine.
"""

from __future__ import annotations

from typing import Any

from channels_inbound.models import Endpoint
from configuration.models import Queue
from flows.actions import do_create_flow_version, do_publish_flow_version
from flows.models import EndpointFlow, Flow
from interactions.channels import Channel

from .models import ChatTopic, ChatWidget

DEMO_KEY = "demo-mairie"

DEMO_FLOW: dict[str, Any] = {
    "start": "accueil",
    "language": "fr",
    "nodes": {
        "accueil": {
            "type": "message",
            "text": "Bonjour, je suis l'assistant de la mairie. Je vous oriente vers un agent.",
            "next": "menu",
        },
        "menu": {
            "type": "menu",
            "prompt": {"text": "Votre demande concerne :"},
            "options": [
                {"key": "1", "label": "Un acte d'état civil", "next": "etat_civil"},
                {"key": "2", "label": "Une inscription scolaire", "next": "ecoles"},
                {"key": "3", "label": "Autre chose", "next": "file"},
            ],
            "retries": 2,
            "invalid": {"text": "Choisissez une des réponses proposées."},
            "default": "file",
        },
        "etat_civil": {"type": "set", "skills": {"mairie-etat-civil": 2}, "next": "file"},
        "ecoles": {"type": "set", "skills": {"mairie-ecoles": 1}, "next": "file"},
        "file": {"type": "queue", "text": "Je vous mets en relation avec un agent de la mairie."},
    },
}


def create_demo_widget(queue: Queue, *, origins: str = "") -> ChatWidget:
    endpoint = Endpoint.objects.create(
        channel=Channel.CHAT, address=DEMO_KEY, name="Mairie de Villeurbanne", queue=queue
    )
    widget = ChatWidget.objects.create(
        endpoint=endpoint, title="Mairie de Villeurbanne", allowed_origins=origins
    )
    for position, (label, label_en) in enumerate(
        [("État civil", "Civil status"), ("Écoles", "Schools"), ("Autre", "Other")], start=1
    ):
        ChatTopic.objects.create(widget=widget, position=position, label=label, label_en=label_en)
    flow = Flow.objects.create(
        name="Assistant de la mairie (discussion en ligne)", organisation_id=queue.organisation_id
    )
    do_publish_flow_version(version=do_create_flow_version(flow=flow, graph=DEMO_FLOW))
    EndpointFlow.objects.create(endpoint=endpoint, flow=flow)
    return widget
