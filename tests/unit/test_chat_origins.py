"""Pure parts of the web chat: origins, the in-memory token bucket, display states."""

from __future__ import annotations

import pytest

from channels_inbound.chat.models import normalize_origin, origin_matches
from channels_inbound.chat.ratelimit import Limit, MemoryBuckets
from channels_inbound.chat.selectors import display_state


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("https://www.Mairie-Exemple.fr/", "https://www.mairie-exemple.fr"),
        ("https://www.mairie-exemple.fr:443", "https://www.mairie-exemple.fr"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("https://*.exemple.gouv.fr", "https://*.exemple.gouv.fr"),
    ],
)
def test_origins_are_normalised(raw: str, normal: str) -> None:
    assert normalize_origin(raw) == normal


@pytest.mark.parametrize(
    "raw",
    ["www.mairie.fr", "ftp://mairie.fr", "https://mairie.fr/page", "https://u:p@mairie.fr", ""],
)
def test_what_is_not_an_origin(raw: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        normalize_origin(raw)


def test_wildcards_cover_subdomains_of_the_same_scheme_only() -> None:
    allowed = "https://*.exemple.gouv.fr"
    assert origin_matches("https://demarches.exemple.gouv.fr", allowed)
    assert origin_matches("https://a.b.exemple.gouv.fr", allowed)
    assert not origin_matches("https://exemple.gouv.fr", allowed)
    assert not origin_matches("http://demarches.exemple.gouv.fr", allowed)
    assert not origin_matches("https://demarches.exemple.gouv.fr.evil.fr", allowed)
    assert not origin_matches("https://evilexemple.gouv.fr", allowed)


def test_a_bucket_allows_its_burst_then_refills() -> None:
    buckets = MemoryBuckets()
    limit = Limit(burst=3, per_minute=60)  # one a second
    verdicts = [buckets.take("k", limit) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert 0 < verdicts[-1].retry_after <= 1
    assert buckets.take("other", limit).allowed  # buckets are per key


@pytest.mark.parametrize(
    ("state", "status", "shown"),
    [
        ("bot", None, "bot"),
        ("handed_over", "queued", "waiting"),
        ("handed_over", "offered", "waiting"),
        ("handed_over", "assigned", "chatting"),
        ("handed_over", "wrap_up", "ended"),
        ("handed_over", "abandoned", "ended"),
        ("ended", "assigned", "ended"),
    ],
)
def test_what_the_citizen_sees(state: str, status: str | None, shown: str) -> None:
    assert display_state(state, status) == shown
