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

from .settings import *  # noqa: F403
from .settings import DATA_DIR, DATABASES

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
