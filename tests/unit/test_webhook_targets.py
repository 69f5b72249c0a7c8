"""Where outgoing webhooks may go (webhooks/targets.py) and how long they wait between
attempts: IP literals only, so no DNS is needed."""

from __future__ import annotations

from typing import Any

import pytest

from webhooks import actions, signing, targets


@pytest.fixture
def production(settings: Any) -> Any:
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    return settings


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://8.8.8.8/hook", "https://"),  # plain http to a public address
        ("ftp://8.8.8.8/hook", "https://"),
        ("https:///hook", "https://"),  # no host
        ("https://user:secret@8.8.8.8/hook", "nom d’utilisateur"),
        ("https://10.1.2.3/hook", "adresse privée"),
        ("https://192.168.1.10/hook", "adresse privée"),
        ("https://172.16.0.5/hook", "adresse privée"),
        ("https://169.254.169.254/latest/meta-data/", "adresse privée"),  # cloud metadata
        ("https://127.0.0.1/hook", "adresse privée"),
        ("https://localhost/hook", "adresse privée"),
        ("https://[::1]/hook", "adresse privée"),
        ("https://[fd00::1]/hook", "adresse privée"),
        ("https://[::ffff:10.0.0.1]/hook", "adresse privée"),  # IPv4-mapped
        ("https://0.0.0.0/hook", "adresse privée"),
        ("https://224.0.0.1/hook", "adresse privée"),
        ("https://192.0.2.10/hook", "adresse privée"),  # documentation range
        ("https://8.8.8.8:99999/hook", "port"),
    ],
)
def test_refused_targets(production: Any, url: str, why: str) -> None:
    with pytest.raises(targets.TargetRefused) as refused:
        targets.validate_target(url)
    assert why in str(refused.value)


def test_a_public_https_address_is_accepted(production: Any) -> None:
    targets.validate_target("https://8.8.8.8/hook?x=1")
    targets.validate_target("https://[2001:4860:4860::8888]:8443/hook")


def test_a_private_network_allowed_by_the_setting(production: Any) -> None:
    production.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    targets.validate_target("https://10.20.3.4/hook")
    with pytest.raises(targets.TargetRefused):
        targets.validate_target("https://10.21.3.4/hook")
    with pytest.raises(targets.TargetRefused):  # still https only
        targets.validate_target("http://10.20.3.4/hook")


def test_loopback_and_plain_http_to_it_only_in_development(production: Any) -> None:
    with pytest.raises(targets.TargetRefused):
        targets.validate_target("http://127.0.0.1:8080/hook")
    production.WEBHOOK_ALLOW_LOOPBACK = True
    targets.validate_target("http://127.0.0.1:8080/hook")
    targets.validate_target("http://localhost:8080/hook")
    targets.validate_target("https://[::1]/hook")
    with pytest.raises(targets.TargetRefused):  # loopback, not any private address
        targets.validate_target("http://10.0.0.1/hook")


def test_a_refused_target_is_never_contacted(production: Any) -> None:
    answer = targets.post("https://169.254.169.254/hook", b"{}", {})
    assert answer.status is None
    assert not answer.ok
    assert "adresse privée" in answer.error


def test_the_back_off_doubles_is_capped_and_jittered(settings: Any) -> None:
    settings.WEBHOOK_RETRY_BACKOFF_S = 30
    settings.WEBHOOK_RETRY_MAX_BACKOFF_S = 900
    for attempt, full in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 900), (12, 900)]:
        waits = [actions.backoff_seconds(attempt) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > full / 10  # jittered, not all the same


def test_the_signature_scheme() -> None:
    body = b'{"event":"interaction.closed"}'
    header = signing.signature_header("whsec_x", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert signing.verify("whsec_x", header, body, now=1_700_000_100)
    assert not signing.verify("whsec_x", header, body, now=1_700_000_000 + 301)  # too old
    assert not signing.verify("whsec_y", header, body, now=1_700_000_000)
    assert not signing.verify("whsec_x", "v1=abc", body, now=1_700_000_000)
