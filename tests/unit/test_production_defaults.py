"""The production settings, read with nothing but a PostgreSQL URL and a secret in the
environment: the defaults an operator gets without setting anything (docs/operations.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT

PRINT = (
    "from django.conf import settings as s; import json; "
    "d = s.DATABASES['default']; "
    "print(json.dumps({'pool': d.get('OPTIONS', {}).get('pool'), "
    "'conn_max_age': d['CONN_MAX_AGE'], 'health': d['CONN_HEALTH_CHECKS'], "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'gc_freeze': s.CONSOLE_GC_FREEZE}))"
)


def _read(**extra: str) -> dict[str, object]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CHANNEL_LAYER", "CONSOLE_"))
    }
    env = {
        **keep,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
        "DJANGO_SECRET_KEY": "production-defaults-" + "x" * 40,
        "DATABASE_URL": "postgres://app@db.example.invalid:5432/cc",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        **extra,
    }
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {PRINT}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_production_defaults_pool_pubsub_and_gc_freeze() -> None:
    got = _read()
    pool = got["pool"]
    assert isinstance(pool, dict)
    assert pool["max_size"] == 10
    assert pool["min_size"] == 2
    assert got["conn_max_age"] == 0  # the pool keeps connections, not Django
    assert got["health"] is True  # each pooled connection is checked before use
    assert str(got["layer"]).endswith("RedisPubSubChannelLayer")
    assert got["gc_freeze"] is True


def test_pool_can_be_turned_off() -> None:
    got = _read(DATABASE_POOL="false", DATABASE_CONN_MAX_AGE="30")
    assert got["pool"] is None
    assert got["conn_max_age"] == 30
