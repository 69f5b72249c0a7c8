"""The e-mail acknowledgement is once a day per sender *and organisation*: a citizen who writes
to the CAF and to the mairie the same day gets each body's acknowledgement (with its "follow
my request" link); a second mail to the same body that day gets none."""

from __future__ import annotations

import pytest

from channels_inbound.email.inbound import do_ingest_email
from channels_inbound.email.models import EmailAcknowledgement
from channels_inbound.models import Endpoint
from configuration.models import Queue
from interactions.models import Message
from organisations.models import Organisation

from .email_helpers import OUR_ADDRESS, make_mail

pytestmark = pytest.mark.django_db

MAIRIE_ADDRESS = "etat-civil@mairie.example.fr"
CITIZEN = "Marie Dupont <marie.dupont@gmail.example>"


def test_each_organisation_acknowledges_the_same_citizen_once_a_day(settings: object) -> None:
    caf_org = Organisation.objects.create(name="CAF du Rhône", slug="caf-rhone")
    mairie_org = Organisation.objects.create(name="Mairie de Lyon", slug="mairie-lyon")
    caf_queue = Queue.objects.create(code="caf-mail", name="CAF", organisation=caf_org)
    mairie_queue = Queue.objects.create(code="ec-mail", name="État civil", organisation=mairie_org)
    Endpoint.objects.create(
        channel="email", address=OUR_ADDRESS, name="CAF", queue=caf_queue, organisation=caf_org
    )
    Endpoint.objects.create(
        channel="email",
        address=MAIRIE_ADDRESS,
        name="Mairie",
        queue=mairie_queue,
        organisation=mairie_org,
    )

    to_caf = do_ingest_email(
        make_mail(sender=CITIZEN, subject="APL").as_bytes(), recipients=[OUR_ADDRESS]
    )
    to_mairie = do_ingest_email(
        make_mail(sender=CITIZEN, subject="Acte de naissance").as_bytes(),
        recipients=[MAIRIE_ADDRESS],
    )
    again_caf = do_ingest_email(
        make_mail(sender=CITIZEN, subject="Autre question").as_bytes(), recipients=[OUR_ADDRESS]
    )

    assert (to_caf.acknowledged, to_mairie.acknowledged, again_caf.acknowledged) == (
        True,
        True,
        False,
    )
    # each body's acknowledgement is an outbound message of its own conversation
    for result in (to_caf, to_mairie):
        assert Message.objects.filter(
            interaction_id=result.interaction_id, direction="outbound"
        ).exists()
    assert EmailAcknowledgement.objects.filter(organisation=caf_org).count() == 1
    assert EmailAcknowledgement.objects.filter(organisation=mairie_org).count() == 1
