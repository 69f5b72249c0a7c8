"""Settings for the test suite: the same environment-driven settings, minus the HTTPS switches.

Which database and Redis the tests use still comes from ``DATABASE_URL`` / ``REDIS_URL``
(``dev.py test`` sets them to the local services when they answer, and always under CI=true).
"""

import os

os.environ.setdefault("DJANGO_SECURE", "false")

from .settings import *  # noqa: F403
from .settings import DATA_DIR, DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
DATA_DIR.mkdir(parents=True, exist_ok=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
