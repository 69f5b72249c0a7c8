"""Citizens: one record however they reach us, merges that keep all history."""

import pytest

from contacts.actions import ContactError, do_add_identity, do_merge_contacts, resolve_contact
from contacts.models import Case, Contact, ContactIdentity, ContactMerge
from interactions.actions import do_create_interaction, do_record_message

pytestmark = pytest.mark.django_db


def test_every_format_of_a_number_finds_the_same_citizen() -> None:
    first = resolve_contact("phone", "06 12 34 56 78", display_name="Marie Dupont")
    assert first.created
    for raw in ["+33612345678", "0033 6 12 34 56 78", "06.12.34.56.78"]:
        again = resolve_contact("phone", raw)
        assert not again.created
        assert again.contact == first.contact
    assert Contact.objects.count() == 1


def test_overseas_number_is_another_citizen() -> None:
    metropole = resolve_contact("phone", "06 92 12 34 56").contact
    reunion = resolve_contact("phone", "+262 692 12 34 56").contact
    assert metropole != reunion


def test_withheld_caller_is_never_attached_to_a_record() -> None:
    resolve_contact("phone", "06 12 34 56 78")
    for raw in ["anonymous", "", "+266696687", None]:
        resolved = resolve_contact("phone", raw)
        assert resolved.contact is None
        assert not resolved.created
    assert Contact.objects.count() == 1


def test_email_display_name_spoof_does_not_reach_another_citizen() -> None:
    marie = resolve_contact("email", "marie.dupont@example.fr", display_name="Marie Dupont").contact
    spoof = resolve_contact("email", '"Marie Dupont" <marie.dupont@evil.test>').contact
    assert spoof != marie


def test_an_identity_owned_by_someone_else_is_refused_with_a_hint_to_merge() -> None:
    marie = resolve_contact("phone", "06 12 34 56 78").contact
    jean = resolve_contact("phone", "07 98 76 54 32").contact
    assert marie
    assert jean
    with pytest.raises(ContactError, match="merge"):
        do_add_identity(contact=jean, kind="phone", raw="+33612345678")


def test_merge_keeps_all_history(make_user: object) -> None:
    # given two records of the same person, one by phone and one by e-mail, each with history
    by_phone = resolve_contact("phone", "06 12 34 56 78", display_name="Marie Dupont").contact
    by_mail = resolve_contact("email", "marie.dupont@example.fr").contact
    assert by_phone
    assert by_mail
    by_mail.notes = "Préfère être rappelée le matin."
    by_mail.save()
    call = do_create_interaction(channel="voice", contact=by_phone)
    mail = do_create_interaction(channel="email", contact=by_mail, subject="Attestation CAF")
    do_record_message(interaction=mail, direction="inbound", text="Bonjour", provider_id="<a@b>")
    Case.objects.create(reference="DOS-2026-000001", contact=by_mail, subject="APL")

    # when a supervisor merges them
    merge = do_merge_contacts(target=by_phone, source=by_mail)

    # then everything is on the kept record, and the other points to it
    by_phone.refresh_from_db()
    by_mail.refresh_from_db()
    assert set(by_phone.interactions.all()) == {call, mail}
    assert mail.messages.count() == 1
    assert {i.value for i in by_phone.identities.all()} == {
        "+33612345678",
        "marie.dupont@example.fr",
    }
    assert by_phone.cases.get().reference == "DOS-2026-000001"
    assert "le matin" in by_phone.notes
    assert by_mail.merged_into == by_phone
    assert resolve_contact("email", "Marie.Dupont@example.fr").contact == by_phone
    assert merge.moved == {"identities": 1, "interactions": 1, "cases": 1, "merged_contacts": 0}
    assert ContactMerge.objects.count() == 1
    assert ContactIdentity.objects.filter(contact=by_mail).count() == 0


def test_merge_refuses_self_and_double_merges() -> None:
    a = resolve_contact("phone", "06 12 34 56 78").contact
    b = resolve_contact("phone", "07 98 76 54 32").contact
    assert a
    assert b
    with pytest.raises(ContactError):
        do_merge_contacts(target=a, source=a)
    do_merge_contacts(target=a, source=b)
    with pytest.raises(ContactError, match="already merged"):
        do_merge_contacts(target=a, source=b)
