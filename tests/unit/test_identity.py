"""Identity normalisation: one citizen however they write their number or address."""

import pytest

from contacts.identity import InvalidIdentity, normalize_email, normalize_phone


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 78",
        "0612345678",
        "+33612345678",
        "+33 6 12 34 56 78",
        "0033 6 12 34 56 78",
        "06.12.34.56.78",
        "(+33) 6-12-34-56-78",
    ],
)
def test_french_mobile_formats_are_one_identity(raw: str) -> None:
    assert normalize_phone(raw) == "+33612345678"


def test_overseas_numbers_keep_their_own_country_code() -> None:
    assert normalize_phone("+262 692 12 34 56") == "+262692123456"  # La Réunion
    assert normalize_phone("+590 690 12 34 56") == "+590690123456"  # Guadeloupe
    # Written nationally from La Réunion, with the region configured for it.
    assert normalize_phone("0692 12 34 56", region="RE") == "+262692123456"


def test_landline_and_foreign_numbers() -> None:
    assert normalize_phone("04 72 00 11 22") == "+33472001122"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "  ",
        "anonymous",
        "Anonymous",
        "restricted",
        "unknown",
        "private",
        "+266696687",
        "+7378742833",
    ],
)
def test_withheld_numbers_match_nobody(raw: str | None) -> None:
    assert normalize_phone(raw) is None


@pytest.mark.parametrize("raw", ["hello", "12", "06 12", "+33 6 12 34 56 78 90 12 34"])
def test_garbage_is_refused_with_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidIdentity, match="phone number"):
        normalize_phone(raw)


def test_email_matches_on_the_real_address_not_the_display_name() -> None:
    assert normalize_email('"Marie Dupont" <Marie.Dupont@Example.FR>') == "marie.dupont@example.fr"
    # The display name claims to be someone else: only the real address counts.
    assert normalize_email('"marie.dupont@example.fr" <attacker@evil.test>') == "attacker@evil.test"


@pytest.mark.parametrize(
    "raw",
    ["not an address", "a@b.fr, c@d.fr", '"marie.dupont@example.fr"@evil.test', "x@localhost"],
)
def test_bad_email_is_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        normalize_email(raw)
