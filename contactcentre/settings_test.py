"""Settings for the test suite: the same environment-driven settings, minus the HTTPS switches.

Which database and Redis the tests use still comes from ``DATABASE_URL`` / ``REDIS_URL``
(``dev.py test`` sets them to the local services when they answer, and always under CI=true).
"""

import os

os.environ.setdefault("DJANGO_SECURE", "false")
os.environ.setdefault("STATIC_MANIFEST", "false")  # no collectstatic needed for tests
# One connection per test database connection: pytest-django creates and drops test databases,
# which a pool holding connections open would block. The pool is exercised by bench/chaos.py.
os.environ.setdefault("DATABASE_POOL", "false")


def _xdist_worker_redis() -> None:
    """pytest-xdist (``dev.py test`` runs two workers): each worker has its own PostgreSQL test
    database (pytest-django adds ``_gw0``, ``_gw1``) and its own Redis databases. Worker N uses
    REDIS_URL's database + 8 x N (of 16): the offsets of tests/support.py (1 to 7) stay inside
    a worker's eight, so the brokers, channel layers, caches and coalescing flags of two workers
    never meet. Redis Pub/Sub channels belong to no database: the channel layer's prefix names
    the database too. Done in the environment, before the settings read it, so the processes a
    test starts (Celery workers, servers) inherit it; ``TEST_REDIS_BASE_URL`` marks it done."""
    from urllib.parse import urlsplit, urlunsplit

    def database(url: str) -> int:
        return int(urlsplit(url).path.strip("/") or 0)

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and "TEST_REDIS_BASE_URL" not in os.environ:
        base = os.environ.get("REDIS_URL", "")
        os.environ["TEST_REDIS_BASE_URL"] = base
        if base and os.environ.get("CHANNEL_LAYER_PREFIX") == f"asgi-db{database(base)}":
            del os.environ["CHANNEL_LAYER_PREFIX"]  # the controller's default, not a choice
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "CHANNEL_LAYER_REDIS_URL"):
            parts = urlsplit(os.environ.get(name, ""))
            if parts.scheme in {"redis", "rediss"}:
                number = (database(os.environ[name]) + 8 * int(worker[2:])) % 16
                os.environ[name] = urlunsplit(parts._replace(path=f"/{number}"))
    if os.environ.get("REDIS_URL"):
        os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"asgi-db{database(os.environ['REDIS_URL'])}")


_xdist_worker_redis()

from .settings import *  # noqa: E402, F403
from .settings import DATA_DIR, DATABASES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
DATA_DIR.mkdir(parents=True, exist_ok=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0

# Tasks run inline in tests unless a test starts a real worker (those set CELERY_EMBEDDED=False
# and point a worker process at the Redis broker themselves).
CELERY_TASK_ALWAYS_EAGER = os.environ.get("TEST_CELERY_EAGER", "true").lower() == "true"
CELERY_EMBEDDED = CELERY_TASK_ALWAYS_EAGER
STATIC_ROOT = DATA_DIR / "static-test"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
