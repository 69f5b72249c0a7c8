"""The queue a flow names, for the voice and chat channels (channels_inbound.queues)."""

from __future__ import annotations

import logging

import pytest

from channels_inbound.queues import named_queue
from configuration.models import Queue
from organisations.models import Organisation

pytestmark = pytest.mark.django_db


def test_a_flow_names_a_queue_of_its_endpoints_organisation_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caf = Organisation.objects.create(name="CAF du Rhône", slug="caf")
    mairie = Organisation.objects.create(name="Mairie de Villeurbanne", slug="mairie")
    ours = Queue.objects.create(organisation=caf, code="accueil", name="Accueil")
    Queue.objects.create(organisation=mairie, code="etat-civil", name="État civil")
    assert named_queue(caf.pk, "accueil", source="call CA1") == ours
    assert named_queue(caf.pk, "", source="call CA1") is None  # no code: the endpoint's queue
    with caplog.at_level(logging.ERROR, logger="channels_inbound.queues"):
        # the same code in another organisation is another body's queue: never taken
        assert named_queue(caf.pk, "etat-civil", source="chat 42") is None
    assert "flow of chat 42 names unknown queue 'etat-civil'" in caplog.text
