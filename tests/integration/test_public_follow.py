""" "Follow my request" (issue 14): the acknowledgement's signed link, the public page it opens
(state, announced delay, last answer; no personal data), tampered, revoked and foreign links,
and the rate limit."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from channels_inbound.email.actions import do_send_email_reply
from channels_inbound.email.inbound import do_ingest_email
from channels_inbound.models import Endpoint
from configuration.models import Queue
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Organisation
from publicquality.follow import do_revoke_follow_links
from publicquality.models import Commitment, FollowLink
from tests.integration.channels.email_helpers import make_mail

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BASE = "https://relation.example.fr"
LINK = re.compile(re.escape(BASE) + r"(/suivi/[^\s/]+/)")
CITIZEN = "Marie Dupont <marie.dupont@gmail.example>"
SUBJECT = "Demande d'APL pour mon fils Lucas"
BODY = "Bonjour, je suis au 12 rue des Lilas, mon numéro allocataire est 7654321."


@dataclass
class Body:
    org: Organisation
    queue: Queue
    endpoint: Endpoint


def _body(tag: str) -> Body:
    org = Organisation.objects.create(name=f"CAF {tag}", slug=f"caf-{tag.lower()}")
    queue = Queue.objects.create(
        organisation=org, code="courriel", name=f"Courriel {tag}", sla_target_seconds=86400
    )
    endpoint = Endpoint.objects.create(
        organisation=org,
        channel="email",
        address=f"contact@caf-{tag.lower()}.example.fr",
        name=f"CAF {tag}",
        queue=queue,
    )
    return Body(org, queue, endpoint)


@pytest.fixture
def bodies(settings: Any) -> tuple[Body, Body]:
    settings.PUBLIC_BASE_URL = BASE
    settings.FOLLOW_RATE_LIMIT_IP = (1000, 1000)
    return _body("A"), _body("B")


@pytest.fixture
def agent_of(make_user: Any) -> Any:
    """An agent of one organisation (user, membership, profile)."""
    from agents.models import AgentProfile
    from organisations.models import Membership

    def make(body: Body, username: str) -> Any:
        user = make_user(username, profile=False)
        Membership.objects.create(user=user, organisation=body.org)
        AgentProfile.objects.create(organisation=body.org, user=user, languages=["fr"])
        return user

    return make


def write_in(body: Body, **mail_args: Any) -> tuple[Interaction, str]:
    """A citizen writes to ``body``; returns the interaction and the path of the link found in
    the acknowledgement e-mail they received."""
    sent_before = len(mail.outbox)
    msg = make_mail(**{"sender": CITIZEN, "subject": SUBJECT, "body": BODY, **mail_args})
    msg.replace_header("To", body.endpoint.address)
    result = do_ingest_email(msg.as_bytes(), recipients=[body.endpoint.address])
    ack = mail.outbox[sent_before]
    found = LINK.search(str(ack.body))
    assert found, ack.body
    return Interaction.objects.get(pk=result.interaction_id), found.group(1)


def visitor(ip: str | None = None) -> Client:
    return Client(REMOTE_ADDR=ip or f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7")


def state_of(response: Any) -> str:
    found = re.search(r'id="follow-state" data-state="(\w+)"', response.content.decode())
    assert found, response.content.decode()[:500]
    return found.group(1)


def test_the_acknowledgement_links_to_a_page_that_follows_the_request(
    bodies: tuple[Body, Body], agent_of: Any
) -> None:
    a, _b = bodies
    Commitment.objects.create(organisation=a.org, channel="email", answer_delay_seconds=5 * 86400)
    interaction, path = write_in(a)
    ack = mail.outbox[-1]
    assert interaction.case is not None
    assert interaction.case.reference in ack.body  # the case reference, then the link
    assert "Suivez l’avancement de votre demande" in ack.body
    assert "Follow the progress of your request" in ack.body  # the English half
    client = visitor()

    page = client.get(path)
    assert page.status_code == 200
    assert state_of(page) == "received"
    text = page.content.decode()
    assert "5 jours" in text  # the announced delay of the organisation's commitment
    assert "Pas encore de réponse" in text
    assert page["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page["Cache-Control"] or "max-age=0" in page["Cache-Control"]

    agent = agent_of(a, "agent-a")
    do_transition_interaction(interaction=interaction, to=Status.ASSIGNED)
    assert state_of(client.get(path)) == "in_progress"
    do_send_email_reply(interaction_id=interaction.pk, author_id=agent.pk, text="C'est en cours.")
    answered = client.get(path)
    assert state_of(answered) == "answered"
    assert "Pas encore de réponse" not in answered.content.decode()
    do_transition_interaction(interaction=interaction, to=Status.WRAP_UP)
    do_transition_interaction(interaction=interaction, to=Status.CLOSED)
    assert state_of(client.get(path)) == "closed"
    english = client.get(path + "?lang=en")
    assert "Closed" in english.content.decode()
    assert english["Content-Language"] == "en"


def test_the_page_shows_no_personal_data(bodies: tuple[Body, Body], agent_of: Any) -> None:
    a, _b = bodies
    interaction, path = write_in(a)
    do_transition_interaction(interaction=interaction, to=Status.ASSIGNED)
    do_send_email_reply(
        interaction_id=interaction.pk,
        author_id=agent_of(a, "agent-a").pk,
        text="Madame Dupont, votre dossier 7654321 est validé.",
    )
    text = visitor().get(path).content.decode()
    assert interaction.case is not None
    for personal in (
        "Marie",
        "Dupont",
        "marie.dupont",
        "Lucas",
        "Lilas",
        "7654321",
        interaction.case.reference,
        "agent-a",
        "validé",
    ):
        assert personal not in text, personal


def test_tampered_unknown_revoked_and_expired_links_all_answer_the_same_404(
    bodies: tuple[Body, Body], settings: Any
) -> None:
    a, _b = bodies
    interaction, path = write_in(a)
    client = visitor()
    token = path.split("/")[2]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    forged = "x" * len(token)
    answers = [client.get(f"/suivi/{t}/") for t in (tampered, forged, "1", token + "x")]
    assert [r.status_code for r in answers] == [404, 404, 404, 404]
    bodies_seen = {r.content for r in answers}
    assert len(bodies_seen) == 1  # nothing tells a bad signature from an unknown link

    assert client.get(path).status_code == 200
    assert do_revoke_follow_links(interaction=interaction) == 1
    revoked = client.get(path)
    assert revoked.status_code == 404
    assert revoked.content in bodies_seen

    # Another request's acknowledgement gives a new link (one acknowledgement per sender per
    # day); an expired link is refused like the others.
    _, fresh = write_in(a, sender="Paul Martin <paul.martin@laposte.example>")
    assert client.get(fresh).status_code == 200
    settings.FOLLOW_LINK_MAX_AGE_DAYS = -1
    expired = client.get(fresh)
    assert expired.status_code == 404
    assert expired.content in bodies_seen


def test_the_database_cannot_rebuild_a_link(bodies: tuple[Body, Body]) -> None:
    a, _b = bodies
    _, path = write_in(a)
    token = path.split("/")[2]
    nonce = token.split(":")[0]
    stored = FollowLink.objects.get()
    assert nonce not in stored.nonce_hash
    assert token not in stored.nonce_hash


def test_each_organisation_sees_only_its_request(bodies: tuple[Body, Body]) -> None:
    """Two bodies on one install: each link shows its own request; another organisation's
    commitment never applies, and a link whose row is moved out of its organisation dies."""
    a, b = bodies
    Commitment.objects.create(organisation=a.org, channel="email", answer_delay_seconds=2 * 86400)
    Commitment.objects.create(organisation=b.org, channel="email", answer_delay_seconds=9 * 86400)
    in_a, path_a = write_in(a)
    in_b, path_b = write_in(b, sender="Paul Martin <paul.martin@laposte.example>")
    assert in_a.organisation_id == a.org.pk
    assert in_b.organisation_id == b.org.pk
    client = visitor()
    page_a = client.get(path_a).content.decode()
    page_b = client.get(path_b).content.decode()
    assert "2 jours" in page_a
    assert "9 jours" not in page_a
    assert "9 jours" in page_b
    # A row whose organisation does not match its interaction's is not honoured.
    FollowLink.objects.filter(interaction=in_b).update(organisation=a.org)
    assert client.get(path_b).status_code == 404


def test_the_follow_page_is_rate_limited_per_address(
    bodies: tuple[Body, Body], settings: Any
) -> None:
    a, _b = bodies
    _, path = write_in(a)
    settings.FOLLOW_RATE_LIMIT_IP = (3, 0.01)
    ip = f"192.0.2.{uuid.uuid4().int % 250}"
    guesser = visitor(ip)
    statuses = [guesser.get(f"/suivi/guess-{n}/").status_code for n in range(3)]
    assert statuses == [404, 404, 404]
    limited = guesser.get(path)  # even the right link, once the address spent its tokens
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert "Trop de demandes" in limited.content.decode()
    assert visitor().get(path).status_code == 200  # another address is not affected


def test_no_link_without_a_public_address(bodies: tuple[Body, Body], settings: Any) -> None:
    a, _b = bodies
    settings.PUBLIC_BASE_URL = ""
    msg = make_mail(sender=CITIZEN, subject=SUBJECT, body=BODY)
    do_ingest_email(msg.as_bytes(), recipients=[a.endpoint.address])
    assert "/suivi/" not in mail.outbox[-1].body
    assert not FollowLink.objects.exists()


def test_a_link_path_gives_no_hint_of_the_interaction(bodies: tuple[Body, Body]) -> None:
    a, _b = bodies
    interaction, path = write_in(a)
    token = path.split("/")[2]
    assert str(interaction.pk) not in token.split(":")[0] or len(token) > 40
    assert urlsplit(BASE + path).path == path
