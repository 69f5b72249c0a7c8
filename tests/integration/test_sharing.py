"""Sharing agreements: the only way one body reads another's citizens, read only, revocable.

A France Services desk (here: the mairie) may be allowed by a platform administrator to read
the CAF's citizen records and conversations, to help a citizen without making them repeat
themselves. It never changes them, and the access ends when the agreement is revoked.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from organisations import authz
from organisations.models import SharingAgreement
from tests.integration.test_api_scope import Body, _body

pytestmark = pytest.mark.django_db


@pytest.fixture
def caf(roles: None) -> Body:
    return _body("caf", "+33611111111")


@pytest.fixture
def mairie(roles: None, caf: Body) -> Body:
    return _body("mairie", "+33622222222")


def _platform_admin() -> User:
    return User.objects.create_superuser("plateforme", "p@example.fr", "pw-Test-2026!")


def test_without_an_agreement_nothing_crosses(api_client_for: Any, caf: Body, mairie: Body) -> None:
    client = api_client_for(mairie.agent)
    assert client.get(f"/api/v1/contacts/{caf.citizen.pk}/").status_code == 404
    assert client.get(f"/api/v1/interactions/{caf.interaction.pk}/messages/").status_code == 404


def test_an_agreement_lets_the_grantee_read_but_never_change_until_revoked(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    # given: the platform shares the CAF's citizens with the mairie's desk
    admin = _platform_admin()
    agreement = SharingAgreement.objects.create(
        owner=caf.org, grantee=mairie.org, reason="France Services", created_by=admin
    )
    client = api_client_for(mairie.agent)
    # then: the mairie's agent reads the CAF's citizen and conversation...
    assert client.get(f"/api/v1/contacts/{caf.citizen.pk}/").status_code == 200
    messages = client.get(f"/api/v1/interactions/{caf.interaction.pk}/messages/")
    assert messages.status_code == 200
    assert "caf: bonjour" in messages.content.decode()
    # ...but changes nothing of it
    assert not authz.can_change(mairie.agent, caf.citizen)
    response = client.patch(
        f"/api/v1/contacts/{caf.citizen.pk}/", {"display_name": "Changé"}, format="json"
    )
    assert response.status_code in (403, 404)
    caf.citizen.refresh_from_db()
    assert caf.citizen.display_name == "Citoyen caf"
    # and the CAF sees nothing of the mairie's (sharing is one way)
    caf_client = api_client_for(caf.agent)
    assert caf_client.get(f"/api/v1/contacts/{mairie.citizen.pk}/").status_code == 404
    # when: the agreement is revoked (kept, with who and when), access ends
    agreement.revoked_by = admin
    agreement.revoked_at = timezone.now()
    agreement.save(update_fields=["revoked_by", "revoked_at"])
    client = api_client_for(User.objects.get(pk=mairie.agent.pk))  # a new request, new principal
    assert client.get(f"/api/v1/contacts/{caf.citizen.pk}/").status_code == 404
    assert SharingAgreement.objects.filter(pk=agreement.pk, revoked_by=admin).exists()


def test_only_platform_administrators_see_sharing_agreements(caf: Body, mairie: Body) -> None:
    SharingAgreement.objects.create(owner=caf.org, grantee=mairie.org, reason="France Services")
    assert not authz.visible(mairie.supervisor, SharingAgreement).exists()
    assert authz.visible(_platform_admin(), SharingAgreement).count() == 1
