"""Settings, read from the environment (12-factor).

With nothing set the app runs on an embedded default: SQLite under ``DATA_DIR``, the in-memory
channel layer and Celery tasks executed inside the server process. ``DATABASE_URL`` and
``REDIS_URL`` switch to PostgreSQL (psycopg 3), channels-redis and a Celery broker on Redis.
Every variable is listed in README.md ("Configuration").
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.utils.translation import gettext_lazy as _

from kernel.asgi_limits import default_limit as default_web_concurrency

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
# The embedded default is a development/demo mode: an ephemeral key is fine there, never in
# production (the deploy checks refuse the insecure prefix).
SECRET_KEY: str = env.str(
    "DJANGO_SECRET_KEY", default="django-insecure-dev-only-change-me-0123456789abcdefghijklmnop"
)
ALLOWED_HOSTS: list[str] = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data")))

INSTALLED_APPS = [
    "daphne",  # runserver speaks ASGI (HTTP + WebSocket) in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "kernel",
    "contactcentre",
    "organisations",
    "configuration",
    "contacts",
    "interactions",
    "routing",
    "agents",
    "channels_inbound",
    "channels_inbound.sms",
    "channels_inbound.voice",
    "channels_inbound.email",
    "channels_inbound.chat",
    "flows",
    "console",
    "supervision",
    "apitokens",
    "privacy",
    "publicquality",
    "surveys",
    "webhooks",
    "sso",
    "metrics",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
]

MIDDLEWARE = [
    # First: the request id in and out, and one log line per request (kernel/logs.py).
    "kernel.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "kernel.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before everything that renders a page (the second-factor redirect, axes' lockout page).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # 400 for a NUL character in the path, query string or body, before any view reads them.
    "kernel.middleware.RejectNulMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "console.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Names the user behind a configuration change for the audit triggers (PostgreSQL).
    "privacy.middleware.AuditActorMiddleware",
    "console.middleware.IdleTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "contactcentre.urls"
ASGI_APPLICATION = "contactcentre.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # 0 by default: under ASGI Django advises against persistent connections, and the
        # connection pool (DATABASE_POOL, on by default below) reuses connections instead.
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", 0))
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "contactcentre.sqlite3",
            # WAL + a busy timeout let the server, the embedded sweep and tests share the file.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

# --- Redis, channel layer, Celery -----------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
# The channel layer is Redis Pub/Sub (channels_redis.pubsub) by default: one subscriber
# connection per server process, fan-out done by Redis; at-most-once delivery, which the
# console tolerates (it catches up on what it missed from the event outbox, on the same
# socket). CHANNEL_LAYER_BACKEND=core is channels_redis' list-based layer: it stopped
# delivering to a process under connection churn (bench/chaos.py at full rates: process
# queues of 900 messages never read, offers never shown) and with thousands of consoles per
# process (bench/console_fanout.py: 0 of 442 offers). docs/benchmarks.md.
CHANNEL_LAYER_BACKEND: str = env.str("CHANNEL_LAYER_BACKEND", default="pubsub")
# An idle consumer waits in a blocking read (BZPOPMIN) of CHANNEL_LAYER_BLOCKING_READ_SECONDS,
# looping while nothing arrives; every reply is read with CHANNEL_LAYER_SOCKET_TIMEOUT. The
# socket timeout must outlast the blocking read (by 1 s at least, checked when the layer is
# built): when both were 5 s (channels_redis' read, redis-py's default timeout) the client gave
# up first and an idle console was disconnected every ~5 s. The socket timeout also bounds every
# other command (a publish to an unreachable Redis). docs/operations.md, "An idle console".
CHANNEL_LAYER_BLOCKING_READ_SECONDS: float = env.float(
    "CHANNEL_LAYER_BLOCKING_READ_SECONDS", default=2.0
)
CHANNEL_LAYER_SOCKET_TIMEOUT: float = env.float("CHANNEL_LAYER_SOCKET_TIMEOUT", default=5.0)
CHANNEL_LAYER_HOST: dict[str, Any] = {
    "address": env.str("CHANNEL_LAYER_REDIS_URL", default=REDIS_URL),
    "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
}
if REDIS_URL and CHANNEL_LAYER_BACKEND == "pubsub":
    # Pub/Sub polls for messages (0.1 s reads that may time out): no blocking read to outlast.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [CHANNEL_LAYER_HOST],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="asgi"),
            },
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "kernel.channel_layer.RedisChannelLayer",
            "CONFIG": {
                "hosts": [CHANNEL_LAYER_HOST],
                "blocking_read_seconds": CHANNEL_LAYER_BLOCKING_READ_SECONDS,
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="asgi"),
                "capacity": 1500,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: a broker on Redis when configured; otherwise tasks run eagerly inside the process that
# calls them and the periodic sweep runs in a small in-process loop (see contactcentre.embedded).
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER: bool = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_EMBEDDED: bool = CELERY_TASK_ALWAYS_EAGER
ROUTING_SWEEP_SECONDS: float = env.float("ROUTING_SWEEP_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "routing-sweep": {"task": "routing.sweep", "schedule": ROUTING_SWEEP_SECONDS},
    "console-prune-events": {"task": "console.prune_events", "schedule": 3600.0},
}

# --- Routing (docs/routing.md) --------------------------------------------------------------
# How long an offer waits for the agent, per channel (seconds).
ROUTING_OFFER_TIMEOUTS: dict[str, int] = {
    "voice": env.int("ROUTING_OFFER_TIMEOUT_VOICE", default=20),
    "chat": env.int("ROUTING_OFFER_TIMEOUT_CHAT", default=30),
    "email": env.int("ROUTING_OFFER_TIMEOUT_EMAIL", default=120),
    "sms": env.int("ROUTING_OFFER_TIMEOUT_SMS", default=120),
}
# Channels whose offers are accepted on the agent's behalf (no accept click).
ROUTING_AUTO_ACCEPT_CHANNELS: list[str] = env.list("ROUTING_AUTO_ACCEPT_CHANNELS", default=[])
# A console that has not sent a heartbeat for this long is gone: no more offers.
ROUTING_HEARTBEAT_WINDOW_SECONDS: int = env.int("ROUTING_HEARTBEAT_WINDOW_SECONDS", default=45)
# "Preferred agent": the last agent who served this citizen within this window.
ROUTING_PREFERRED_AGENT_WINDOW_HOURS: int = env.int("ROUTING_PREFERRED_AGENT_WINDOW_HOURS", 72)
# After a call, the agent stays in wrap-up this long before being offered work again.
ROUTING_WRAP_UP_SECONDS: int = env.int("ROUTING_WRAP_UP_SECONDS", default=30)
# An agent who lets an offer expire is paused ("missed") so the next citizen does not wait.
ROUTING_PAUSE_ON_MISSED: bool = env.bool("ROUTING_PAUSE_ON_MISSED", default=True)
# Matches claimed per database transaction.
ROUTING_CLAIM_CHUNK: int = env.int("ROUTING_CLAIM_CHUNK", default=500)
# Policy weights (routing.policy.PolicyConfig).
ROUTING_AGEING_RATE: float = env.float("ROUTING_AGEING_RATE", default=1.0)
ROUTING_PRIORITY_WEIGHT: float = env.float("ROUTING_PRIORITY_WEIGHT", default=100.0)
# After the heartbeat window, this much more silence (a network cut the console survives) and
# the agent's work goes back to the queue in front; the agent goes offline, "connection lost".
ROUTING_CONSOLE_GRACE_SECONDS: int = env.int("ROUTING_CONSOLE_GRACE_SECONDS", default=60)

# Broker visibility timeout (Redis transport). A message a worker took and has not acknowledged
# (acks_late: until the task ends; an eta/countdown task: until it has run) goes back to the
# queue after this long: so it must exceed the longest delay any task is scheduled with, or the
# message is delivered twice (harmless for our idempotent tasks, but work done twice), and it
# is also how long a message held by a killed worker stays lost (the sweep covers routing).
# The longest delays: offer timers (ROUTING_OFFER_TIMEOUTS, 120 s), wrap-up (30 s), a lost
# console (heartbeat window + grace, 105 s), e-mail retries (960 s, the 6th), chat transcripts
# (480 s); escalation passes are scheduled at each step's after_seconds: a step longer than
# this gets its pass twice (an idempotent routing pass). Plus 300 s for the task's own run.
CELERY_LONGEST_COUNTDOWN_SECONDS: int = env.int(
    "CELERY_LONGEST_COUNTDOWN_SECONDS",
    default=max(
        960,
        *ROUTING_OFFER_TIMEOUTS.values(),
        ROUTING_WRAP_UP_SECONDS,
        ROUTING_HEARTBEAT_WINDOW_SECONDS + ROUTING_CONSOLE_GRACE_SECONDS,
    ),
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": env.int(
        "CELERY_VISIBILITY_TIMEOUT_SECONDS", default=CELERY_LONGEST_COUNTDOWN_SECONDS + 300
    ),
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses locked-out logins before the password check
    "django.contrib.auth.backends.ModelBackend",
    # Sessions opened through an organisation's OpenID Connect provider (sso/, docs/operations.md
    # "Single sign-on"); it authenticates nobody through authenticate() itself.
    "sso.backends.OrganisationOIDCBackend",
]
# Seconds to wait for an identity provider (discovery, token, userinfo, keys).
OIDC_TIMEOUT: float = env.float("OIDC_TIMEOUT", default=10)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Agents share workstations in open spaces: sessions are short and end with the browser.
SESSION_COOKIE_AGE: int = env.int(
    "SESSION_COOKIE_AGE", default=int(timedelta(hours=10).total_seconds())
)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Brute force (django-axes): this many failed logins for one username from one address lock
# that pair out for AXES_COOLOFF_MINUTES. Second-factor codes are throttled by django-otp.
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client address behind TRUSTED_PROXIES only (kernel/clientip.py), never a forged
# X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "kernel.clientip.client_ip_for_request"
OTP_TOTP_ISSUER: str = env.str("OTP_TOTP_ISSUER", default="Centre de contacts")
# --- Agent console (docs/console.md) ---
# Idle timeout: after this long without a click or key press the session ends; the console
# warns CONSOLE_IDLE_WARNING_SECONDS before and the agent can extend.
CONSOLE_IDLE_TIMEOUT_SECONDS: int = env.int("CONSOLE_IDLE_TIMEOUT_SECONDS", default=30 * 60)
CONSOLE_IDLE_WARNING_SECONDS: int = env.int("CONSOLE_IDLE_WARNING_SECONDS", default=120)
CONSOLE_HEARTBEAT_SECONDS: int = env.int("CONSOLE_HEARTBEAT_SECONDS", default=15)
# Each server process writes its consoles' heartbeats in one UPDATE this often, and checks
# their sessions (still there, not idle, account active) this often (console/live.py).
CONSOLE_HEARTBEAT_FLUSH_SECONDS: float = env.float("CONSOLE_HEARTBEAT_FLUSH_SECONDS", default=5.0)
CONSOLE_SESSION_CHECK_SECONDS: float = env.float("CONSOLE_SESSION_CHECK_SECONDS", default=60.0)
# Servers holding thousands of consoles: freeze what survives a full garbage collection so the
# next ones stay short (console/live.py, docs/benchmarks.md "Console fan-out").
# On by default: it only acts in processes that hold consoles (console/live.py), where it was
# measured to shorten collection pauses (docs/benchmarks.md "Console fan-out").
CONSOLE_GC_FREEZE: bool = env.bool("CONSOLE_GC_FREEZE", default=True)
CONSOLE_GC_UNFREEZE_SECONDS: float = env.float("CONSOLE_GC_UNFREEZE_SECONDS", default=6 * 3600.0)
# Agent events are kept this long for consoles that reconnect (older: a fresh snapshot).
CONSOLE_EVENT_RETENTION_SECONDS: int = env.int(
    "CONSOLE_EVENT_RETENTION_SECONDS", default=int(timedelta(hours=24).total_seconds())
)
CONSOLE_REPLAY_OVERLAP_SECONDS: int = env.int("CONSOLE_REPLAY_OVERLAP_SECONDS", default=10)

# --- Internationalisation: French first, English available ----------------------------------
LANGUAGE_CODE: str = env.str("LANGUAGE_CODE", default="fr")
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE: str = env.str("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True
PHONE_DEFAULT_REGION: str = env.str("PHONE_DEFAULT_REGION", default="FR")

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or not env.bool("STATIC_MANIFEST", default=True)
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "media/"

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apitokens.authentication.APITokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["kernel.permissions.RoleModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "kernel.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kernel.api_errors.exception_handler",
}
# Personal API tokens expire this long after they are made (docs/operations.md, "API tokens").
API_TOKEN_TTL_SECONDS: int = env.int("API_TOKEN_TTL_SECONDS", default=8 * 3600)
SPECTACULAR_SETTINGS = {
    "TITLE": "Contact centre API",
    "DESCRIPTION": "Omnichannel contact centre for public services: contacts, interactions, "
    "queues, skills and agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"InteractionStatusEnum": "interactions.lifecycle.Status.choices"},
}

# --- Security switches (production: DJANGO_DEBUG=false, the default) -----------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_HTTPONLY = False  # htmx/JS read it for API calls; the session cookie stays HttpOnly
if env.bool("DJANGO_SECURE", default=not DEBUG):
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
    # Behind a TLS-terminating reverse proxy (nginx, Traefik, a cloud load balancer).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# --- Content-Security-Policy and Permissions-Policy (docs/operations.md) --------------------
# django-csp sends this policy on every page: scripts, styles, fonts and connections from this
# site only, no inline code and no eval. An inline <script> or <style> a template cannot do
# without carries nonce="{{ request.csp_nonce }}": a fresh value per response, named in the
# header only when the page used it. json_script data blocks (type="application/json") are not
# run and need none. 'self' in connect-src also allows ws:/wss: to this very host (CSP Level 3),
# which is where the console, the wallboard and the chat widget open their WebSockets. The chat
# widget's script runs on partners' pages under their policy, not this one.
# Extra sources per directive, comma-separated, e.g. CSP_EXTRA_CONNECT_SRC=wss://ws.example.fr:
# CSP_EXTRA_SCRIPT_SRC, _STYLE_SRC, _IMG_SRC, _FONT_SRC, _CONNECT_SRC, _FORM_ACTION. A STATIC_URL
# on another origin (a CDN) is added to the script, style, image and font sources by itself.
# CSP_REPORT_URI: where browsers post violation reports. CSP_REPORT_ONLY=true: the policy is
# only reported (Content-Security-Policy-Report-Only), to try a change on a live site first.
_static = urlsplit(STATIC_URL)
_static_origin = f"{_static.scheme}://{_static.netloc}".lstrip(":/") if _static.netloc else ""


def _csp_sources(directive: str, *sources: Any) -> list[Any]:  # str or csp.constants.NONCE
    extra = env.list(f"CSP_EXTRA_{directive.upper().replace('-', '_')}", default=[])
    return [s for s in (*sources, *extra) if s]


_CSP_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": _csp_sources("script-src", SELF, NONCE, _static_origin),
        "style-src": _csp_sources("style-src", SELF, NONCE, _static_origin),
        "img-src": _csp_sources("img-src", SELF, "data:", _static_origin),
        "font-src": _csp_sources("font-src", SELF, _static_origin),
        "connect-src": _csp_sources("connect-src", SELF),
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": _csp_sources("form-action", SELF),
        # No site may frame ours (X_FRAME_OPTIONS says the same to older browsers).
        "frame-ancestors": [NONE],
        "report-uri": env.list("CSP_REPORT_URI", default=[]) or None,
    }
}
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY: dict[str, Any] | None = None
    CONTENT_SECURITY_POLICY_REPORT_ONLY: dict[str, Any] | None = _CSP_POLICY
else:
    CONTENT_SECURITY_POLICY = _CSP_POLICY
    CONTENT_SECURITY_POLICY_REPORT_ONLY = None

# Browser features no page of ours uses, switched off for our pages and anything they could
# embed (kernel.middleware.PermissionsPolicyMiddleware; an empty list is "=()"). The
# console's ring is Web Audio and needs none. PERMISSIONS_POLICY_SELF=camera,microphone gives
# features back to our own pages (a future WebRTC softphone, for instance).
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
}
for _feature in env.list("PERMISSIONS_POLICY_SELF", default=[]):
    PERMISSIONS_POLICY[_feature] = ["self"]

# --- Hardening (docs/operations.md, "Hardening") -------------------------------------------
# Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR networks. Empty (the
# default): the header is never believed, the client is the TCP peer. Used by the login lockout,
# the chat rate limits and /healthz (kernel/clientip.py).
TRUSTED_PROXIES: list[str] = env.list("TRUSTED_PROXIES", default=[])
# Callers from these networks get /healthz's details; others only the status.
HEALTHZ_INTERNAL_NETWORKS: list[str] = env.list(
    "HEALTHZ_INTERNAL_NETWORKS",
    default=[
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ],
)

# --- Metrics (docs/operations.md, "Metrics") -----------------------------------------------
# GET /metrics (Prometheus) is off until METRICS_TOKEN is set; then only callers from
# METRICS_ALLOWED_NETWORKS (client address as for /healthz) with "Authorization: Bearer <token>".
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS: list[str] = env.list(
    "METRICS_ALLOWED_NETWORKS", default=list(HEALTHZ_INTERNAL_NETWORKS)
)
# Multi-process mode: every web and worker process writes its counters there and /metrics adds
# them up. Read from the environment by prometheus_client itself when imported: set it for the
# processes, not here.
PROMETHEUS_MULTIPROC_DIR: str = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# --- Logging --------------------------------------------------------------------------------
# Logs (docs/operations.md, "Logs"): one JSON object per line, or readable text (the default
# with DJANGO_DEBUG, as `python3 dev.py run` sets). Phone numbers and e-mail addresses are
# masked in every line (kernel/logs.py).
LOG_FORMAT: str = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ValueError(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "kernel.logs.plain_formatter"},
        "json": {"()": "kernel.logs.json_formatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own console handler (DEBUG only) would write its lines twice, unformatted.
        "django": {"handlers": [], "propagate": True},
        "django.channels.server": {"level": "WARNING"},
        # Eager (embedded) tasks would log every periodic sweep at INFO.
        "celery.app.trace": {"level": "WARNING"},
        # A worker's "Task ... received": the task's own line (contactcentre.tasks) says it all.
        "celery.worker.strategy": {"level": "WARNING"},
        # django-axes announces itself at INFO in every process and command.
        "axes": {"level": "WARNING"},
        # uvicorn's own lines in the same format; its access log is off (it would write the
        # query string): contactcentre.requests has one line per request instead.
        "uvicorn": {"handlers": [], "propagate": True},
        "uvicorn.error": {"handlers": [], "propagate": True},
        "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        # the provider's REST client writes ten INFO lines per request (URLs, query strings)
        "twilio.http_client": {"level": "WARNING"},
    },
}

# --- E-mail (channels_inbound.email) ---
# Outbound mail (acknowledgements, agent replies): the console backend in development prints
# messages; production sets EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and the
# relay below (docs/channels.md, "E-mail").
EMAIL_BACKEND: str = env.str(
    "EMAIL_BACKEND",
    default=(
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG or not env.str("EMAIL_HOST", default="")
        else "django.core.mail.backends.smtp.EmailBackend"
    ),
)
EMAIL_HOST: str = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT: int = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER: str = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD: str = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS: bool = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL: bool = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT: int = env.int("EMAIL_TIMEOUT", default=30)
# Our mail domain: the right-hand side of the Message-IDs we generate.
EMAIL_DOMAIN: str = env.str("EMAIL_DOMAIN", default="contact.localhost")
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default=f"ne-pas-repondre@{EMAIL_DOMAIN}")
SERVER_EMAIL: str = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# The SMTP server the relay delivers to (manage.py smtp_server).
EMAIL_SMTP_SERVER_HOST: str = env.str("EMAIL_SMTP_SERVER_HOST", default="127.0.0.1")
EMAIL_SMTP_SERVER_PORT: int = env.int("EMAIL_SMTP_SERVER_PORT", default=2525)
EMAIL_SMTP_SERVER_HOSTNAME: str = env.str("EMAIL_SMTP_SERVER_HOSTNAME", default=EMAIL_DOMAIN)
# Embedded default only: `manage.py serve` runs that SMTP server in its own process (its events
# then reach the consoles on the in-memory channel layer). Off: run `manage.py smtp_server`.
EMAIL_SMTP_SERVER_EMBEDDED: bool = env.bool("EMAIL_SMTP_SERVER_EMBEDDED", default=False)
# Limits, checked against the content (not the declared headers).
EMAIL_MAX_MESSAGE_BYTES: int = env.int("EMAIL_MAX_MESSAGE_BYTES", default=25 * 1024 * 1024)
EMAIL_MAX_ATTACHMENT_BYTES: int = env.int("EMAIL_MAX_ATTACHMENT_BYTES", default=10 * 1024 * 1024)
EMAIL_MAX_ATTACHMENTS: int = env.int("EMAIL_MAX_ATTACHMENTS", default=10)
EMAIL_ALLOWED_ATTACHMENT_TYPES: list[str] = env.list(
    "EMAIL_ALLOWED_ATTACHMENT_TYPES",
    default=[
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/plain",
    ],
)
# Under MEDIA_ROOT; never served as public media (the console serves them to agents).
EMAIL_ATTACHMENTS_DIR: str = env.str("EMAIL_ATTACHMENTS_DIR", default="email-attachments")
# The acknowledgement: sent once per sender per day, with the case reference and this delay.
EMAIL_ACKNOWLEDGEMENT: bool = env.bool("EMAIL_ACKNOWLEDGEMENT", default=True)
EMAIL_ACK_REPLY_DELAY_FR: str = env.str("EMAIL_ACK_REPLY_DELAY_FR", default="5 jours ouvrés")
EMAIL_ACK_REPLY_DELAY_EN: str = env.str("EMAIL_ACK_REPLY_DELAY_EN", default="5 working days")
EMAIL_CASE_REFERENCE_PREFIX: str = env.str("EMAIL_CASE_REFERENCE_PREFIX", default="DOS")
# IMAP poller (manage.py imap_poll, or the Celery beat entry below when IMAP_HOST is set).
IMAP_HOST: str = env.str("IMAP_HOST", default="")
IMAP_PORT: int = env.int("IMAP_PORT", default=993)
IMAP_USER: str = env.str("IMAP_USER", default="")
IMAP_PASSWORD: str = env.str("IMAP_PASSWORD", default="")
IMAP_SSL: bool = env.bool("IMAP_SSL", default=True)
IMAP_FOLDER: str = env.str("IMAP_FOLDER", default="INBOX")
# Empty: processed messages are flagged \Seen and stay; a folder name: they are moved there.
IMAP_PROCESSED_FOLDER: str = env.str("IMAP_PROCESSED_FOLDER", default="")
# Our address the mailbox receives for (an Endpoint); defaults to IMAP_USER when it is one.
IMAP_ENDPOINT_ADDRESS: str = env.str("IMAP_ENDPOINT_ADDRESS", default="")
IMAP_POLL_SECONDS: float = env.float("IMAP_POLL_SECONDS", default=60.0)
if IMAP_HOST:
    CELERY_BEAT_SCHEDULE["email-imap-poll"] = {
        "task": "channels_email.imap_poll",
        "schedule": IMAP_POLL_SECONDS,
    }

# --- Telephony and SMS (channels_inbound.sms / .voice) ---------------------------------------
# docs/channels.md describes every setting and webhook URL.
# The public https origin the provider calls (behind a reverse proxy, the URL Django sees is not
# the one the provider signed): e.g. https://contact.example.gouv.fr
PUBLIC_BASE_URL: str = env.str("PUBLIC_BASE_URL", default="")
TELEPHONY_PROVIDER: str = env.str("TELEPHONY_PROVIDER", default="twilio")
TWILIO_ACCOUNT_SID: str = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN: str = env.str("TWILIO_AUTH_TOKEN", default="")
# While rotating the auth token, requests signed with the previous one are still accepted.
TWILIO_AUTH_TOKEN_PREVIOUS: str = env.str("TWILIO_AUTH_TOKEN_PREVIOUS", default="")
# A Twilio-compatible operator gateway's REST API (default: Twilio's own).
TWILIO_API_BASE_URL: str = env.str("TWILIO_API_BASE_URL", default="")
TWILIO_HTTP_CLIENT: str = env.str("TWILIO_HTTP_CLIENT", default="")  # tests: the fake API
# Every REST call to the provider (SMS, call bridging) gives up after these (seconds): a
# provider that refuses or stalls fails the call quickly instead of holding a worker.
PROVIDER_CONNECT_TIMEOUT_S: float = env.float("PROVIDER_CONNECT_TIMEOUT_S", default=3.0)
PROVIDER_READ_TIMEOUT_S: float = env.float("PROVIDER_READ_TIMEOUT_S", default=10.0)
# Outgoing SMS and live-call updates: the provider's REST API, or a development backend.
TELEPHONY_BACKEND: str = env.str(
    "TELEPHONY_BACKEND",
    default=(
        "channels_inbound.providers.twilio.TwilioBackend"
        if TWILIO_ACCOUNT_SID
        else "channels_inbound.providers.dev.ConsoleBackend"
    ),
)
TELEPHONY_FILE_PATH: str = env.str("TELEPHONY_FILE_PATH", default=str(DATA_DIR / "telephony"))
TELEPHONY_WEBHOOK_MAX_BYTES: int = env.int("TELEPHONY_WEBHOOK_MAX_BYTES", default=64 * 1024)
SMS_MAX_BODY_CHARS: int = env.int("SMS_MAX_BODY_CHARS", default=10_000)
# Longest SMS an agent may send: the provider's limit (Twilio: 1,600 characters, counted in
# UTF-16 code units like the console's counter).
SMS_MAX_OUTBOUND_CHARS: int = env.int("SMS_MAX_OUTBOUND_CHARS", default=1600)
# Answer STOP / START with a confirmation (off when the provider already sends its own).
SMS_OPT_OUT_REPLY: bool = env.bool("SMS_OPT_OUT_REPLY", default=True)
# Outbound SMS and e-mail: attempts before a message is marked failed, on transient errors
# (provider unreachable or stalled, 5xx); the wait doubles from OUTBOUND_RETRY_BACKOFF_S.
OUTBOUND_MAX_ATTEMPTS: int = env.int("OUTBOUND_MAX_ATTEMPTS", default=5)
OUTBOUND_RETRY_BACKOFF_S: int = env.int("OUTBOUND_RETRY_BACKOFF_S", default=30)
# Provider media (MMS pictures, voicemail recordings), fetched after ingestion with the REST
# credentials above (HTTP Basic), retried like outbound SMS, then stored under
# MEDIA_ROOT/PROVIDER_MEDIA_DIR (served to agents by the console only). The credentials are sent
# only to PROVIDER_MEDIA_ORIGINS (and TWILIO_API_BASE_URL's origin); media elsewhere are refused.
MEDIA_MAX_BYTES: int = env.int("MEDIA_MAX_BYTES", default=20 * 1024 * 1024)
MEDIA_ALLOWED_TYPES: list[str] = env.list(
    "MEDIA_ALLOWED_TYPES",
    default=[
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/mpeg",
        "audio/wav",
        "audio/x-wav",
        "audio/ogg",
        "audio/amr",
        "audio/mp4",
        "application/pdf",
    ],
)
PROVIDER_MEDIA_ORIGINS: list[str] = env.list(
    "PROVIDER_MEDIA_ORIGINS", default=["https://api.twilio.com"]
)
PROVIDER_MEDIA_DIR: str = env.str("PROVIDER_MEDIA_DIR", default="provider-media")
# Text to speech: voice per language (e.g. fr-FR=Polly.Lea); empty: the provider's default.
VOICE_TTS_VOICE: str = env.str("VOICE_TTS_VOICE", default="")
VOICE_TTS_VOICES: dict[str, str] = env.dict("VOICE_TTS_VOICES", default={})
VOICE_HOLD_MUSIC_URL: str = env.str("VOICE_HOLD_MUSIC_URL", default="")
VOICE_HOLD_MUSIC_LOOPS: int = env.int("VOICE_HOLD_MUSIC_LOOPS", default=1)
# Seconds between two position announcements while waiting (the wait loop's length).
VOICE_WAIT_LOOP_SECONDS: int = env.int("VOICE_WAIT_LOOP_SECONDS", default=45)
VOICE_DIAL_TIMEOUT_SECONDS: int = env.int("VOICE_DIAL_TIMEOUT_SECONDS", default=20)
# With a broker, a bridge with no news of the agent's phone this long after its ring time is
# given up (the call goes back to the queue, the agent is paused "missed").
VOICE_BRIDGE_GRACE_SECONDS: int = env.int("VOICE_BRIDGE_GRACE_SECONDS", default=15)
# A bridge the provider's REST API refused or let stall is tried again this many times in all,
# after VOICE_BRIDGE_RETRY_SECONDS then twice that each time (the caller hears hold music).
VOICE_BRIDGE_ATTEMPTS: int = env.int("VOICE_BRIDGE_ATTEMPTS", default=3)
VOICE_BRIDGE_RETRY_SECONDS: float = env.float("VOICE_BRIDGE_RETRY_SECONDS", default=2.0)
# After its last attempt the call goes back to the queue, at the front; the agent it was for is
# passed over for this long (the next agent is tried), then may get it again.
ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS: int = env.int(
    "ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS", default=60
)
# The number the agent's phone shows for a bridged call: "service" (our number) or "caller".
VOICE_BRIDGE_CALLER_ID: str = env.str("VOICE_BRIDGE_CALLER_ID", default="service")
VOICE_RECORD_CALLS: bool = env.bool("VOICE_RECORD_CALLS", default=False)
VOICE_VOICEMAIL_MAX_SECONDS: int = env.int("VOICE_VOICEMAIL_MAX_SECONDS", default=120)
# Provider webhooks come in bursts; under ASGI each request runs in its own thread, so
# persistent connections (CONN_MAX_AGE) pile up. psycopg's pool is used instead (the default on
# PostgreSQL, as measured in docs/benchmarks.md "Ingest"): at most DATABASE_POOL_MAX_SIZE
# connections per process, reused, each checked before use (CONN_HEALTH_CHECKS). Celery's
# prefork workers close the parent's pool at fork (celery's Django fixup). DATABASE_POOL=false
# falls back to one connection per request (or per CONN_MAX_AGE).
if IS_POSTGRES and env.bool("DATABASE_POOL", default=True):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
# At most this many HTTP requests go through Django at once in one web process; the others wait
# in the event loop (kernel/asgi_limits.py). Default: the pool's size less two, so the lean SMS
# webhook path and the console sockets always find a connection; 0: no bound (also the
# default without a pool, e.g. SQLite).
_POOL = DATABASES["default"].get("OPTIONS", {}).get("pool")
WEB_DJANGO_CONCURRENCY: int = env.int(
    "WEB_DJANGO_CONCURRENCY",
    default=default_web_concurrency(_POOL["max_size"] if isinstance(_POOL, dict) else None),
)
# Re-enqueues received SMS whose processing was lost (broker down right after the commit).
CELERY_BEAT_SCHEDULE["sms-inbound-sweep"] = {
    "task": "channels_sms.sweep_inbound",
    "schedule": env.float("SMS_SWEEP_SECONDS", default=60.0),
}
# SMS webhooks the database cannot take (PostgreSQL down) are spooled here, answered 200, and
# stored once it answers again (channels_inbound/sms/spool.py): each web process drains its own
# directory every WEBHOOK_SPOOL_DRAIN_SECONDS (0: no drainer thread), and so does the beat
# entry below from a worker sharing the directory. Keep it on local, persistent disk.
WEBHOOK_SPOOL_DIR: str = env.str("WEBHOOK_SPOOL_DIR", default=str(DATA_DIR / "webhook-spool"))
WEBHOOK_SPOOL_DRAIN_SECONDS: float = env.float("WEBHOOK_SPOOL_DRAIN_SECONDS", default=10.0)
# The lean SMS path spools a delivery the database has not stored within this many seconds
# (a pool waiting for a stopped server), below the provider's own timeout (Twilio: 15 s); after
# a connection error, deliveries are spooled without trying the database for this long.
WEBHOOK_SPOOL_WAIT_SECONDS: float = env.float("WEBHOOK_SPOOL_WAIT_SECONDS", default=5.0)
WEBHOOK_SPOOL_BYPASS_SECONDS: float = env.float("WEBHOOK_SPOOL_BYPASS_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE["sms-spool-drain"] = {
    "task": "channels_sms.drain_spool",
    "schedule": WEBHOOK_SPOOL_DRAIN_SECONDS or 10.0,
}
# Re-sends outbound SMS left pending (sending task lost with the broker or a worker).
CELERY_BEAT_SCHEDULE["sms-outbound-sweep"] = {
    "task": "channels_sms.sweep_outbound",
    "schedule": env.float("SMS_SWEEP_SECONDS", default=60.0),
}
# Fetches again provider media whose fetching task was lost.
CELERY_BEAT_SCHEDULE["provider-media-sweep"] = {
    "task": "channels_media.sweep",
    "schedule": env.float("SMS_SWEEP_SECONDS", default=60.0),
}

# --- Web chat (channels_inbound.chat) ---
# docs/channels.md ("Web chat") describes the widget, the embedding snippet and these settings.
# The visitor token (signed with SECRET_KEY) expires after this long without a connection.
CHAT_TOKEN_MAX_AGE_SECONDS: int = env.int("CHAT_TOKEN_MAX_AGE_SECONDS", default=12 * 3600)
CHAT_MAX_MESSAGE_CHARS: int = env.int("CHAT_MAX_MESSAGE_CHARS", default=2000)
CHAT_MAX_FRAME_BYTES: int = env.int("CHAT_MAX_FRAME_BYTES", default=16 * 1024)
# Token buckets (burst, refill per minute): frames per visitor, per IP address, and new
# sockets per IP address. Shared through Redis when REDIS_URL is set.
CHAT_RATE_LIMIT_VISITOR: tuple[int, int] = (
    env.int("CHAT_RATE_VISITOR_BURST", default=10),
    env.int("CHAT_RATE_VISITOR_PER_MINUTE", default=30),
)
CHAT_RATE_LIMIT_IP: tuple[int, int] = (
    env.int("CHAT_RATE_IP_BURST", default=60),
    env.int("CHAT_RATE_IP_PER_MINUTE", default=240),
)
CHAT_RATE_LIMIT_CONNECT_IP: tuple[int, int] = (
    env.int("CHAT_RATE_CONNECT_IP_BURST", default=30),
    env.int("CHAT_RATE_CONNECT_IP_PER_MINUTE", default=60),
)
# While a citizen waits: position and estimated wait are pushed at least this often.
CHAT_QUEUE_REFRESH_SECONDS: float = env.float("CHAT_QUEUE_REFRESH_SECONDS", default=10.0)
CHAT_TOUCH_SECONDS: float = env.float("CHAT_TOUCH_SECONDS", default=30.0)
# A waiting chat whose citizen has been gone (no socket) this long is abandoned by the sweep.
CHAT_ABANDON_AFTER_SECONDS: int = env.int("CHAT_ABANDON_AFTER_SECONDS", default=180)
CHAT_TRANSCRIPTS_PER_SESSION: int = env.int("CHAT_TRANSCRIPTS_PER_SESSION", default=3)
# /chat/demo/: a test page embedding a widget; off (404) unless DEBUG or this is true.
CHAT_DEMO_PAGE: bool = env.bool("CHAT_DEMO_PAGE", default=False)
# Transcripts go only to an address the citizen confirms from their mailbox (a link valid this
# long), at most this many e-mails per address and hour (docs/channels.md, "Web chat").
CHAT_TRANSCRIPT_CONFIRM_MAX_AGE_SECONDS: int = env.int(
    "CHAT_TRANSCRIPT_CONFIRM_MAX_AGE_SECONDS", default=24 * 3600
)
CHAT_TRANSCRIPTS_PER_ADDRESS_PER_HOUR: int = env.int(
    "CHAT_TRANSCRIPTS_PER_ADDRESS_PER_HOUR", default=3
)
CHAT_RATE_LIMIT_TRANSCRIPT_ADDRESS: tuple[int, float] = (
    CHAT_TRANSCRIPTS_PER_ADDRESS_PER_HOUR,
    CHAT_TRANSCRIPTS_PER_ADDRESS_PER_HOUR / 60.0,
)
CELERY_BEAT_SCHEDULE["chat-sweep"] = {
    "task": "channels_chat.sweep",
    "schedule": env.float("CHAT_SWEEP_SECONDS", default=60.0),
}

# Satisfaction surveys (surveys/, docs/quality-and-privacy.md "Satisfaction survey"): a survey
# link or SMS can be answered this long after it was sent; the sweep sends surveys whose
# scheduled task was lost (or whose delay is longer than CELERY_LONGEST_COUNTDOWN_SECONDS).
SURVEY_ANSWER_MAX_AGE_SECONDS: int = env.int("SURVEY_ANSWER_MAX_AGE_SECONDS", default=7 * 24 * 3600)
CELERY_BEAT_SCHEDULE["survey-sweep"] = {
    "task": "surveys.sweep",
    "schedule": env.float("SURVEY_SWEEP_SECONDS", default=60.0),
}

# --- Personal data (privacy/, docs/quality-and-privacy.md "Retention") ---
# The retention purge runs every night at this local hour (Celery beat; the embedded scheduler
# on the default install reads the same crontab), in batches of this many rows per transaction.
PRIVACY_PURGE_HOUR: int = env.int("PRIVACY_PURGE_HOUR", default=3)
PRIVACY_PURGE_BATCH: int = env.int("PRIVACY_PURGE_BATCH", default=500)
CELERY_BEAT_SCHEDULE["privacy-purge"] = {
    "task": "privacy.purge",
    "schedule": crontab(hour=PRIVACY_PURGE_HOUR, minute=30),
}

# --- Outgoing webhooks (webhooks/, docs/operations.md "Outgoing webhooks") ---
# Attempts per delivery; the wait after a failed one doubles from WEBHOOK_RETRY_BACKOFF_S up to
# WEBHOOK_RETRY_MAX_BACKOFF_S (keep it within CELERY_LONGEST_COUNTDOWN_SECONDS), jittered.
WEBHOOK_MAX_ATTEMPTS: int = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BACKOFF_S: float = env.float("WEBHOOK_RETRY_BACKOFF_S", default=30.0)
WEBHOOK_RETRY_MAX_BACKOFF_S: float = env.float("WEBHOOK_RETRY_MAX_BACKOFF_S", default=900.0)
# A subscription is switched off after this many failed attempts in a row (0: never).
WEBHOOK_DISABLE_AFTER_FAILURES: int = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
WEBHOOK_CONNECT_TIMEOUT_S: float = env.float("WEBHOOK_CONNECT_TIMEOUT_S", default=3.0)
WEBHOOK_TIMEOUT_S: float = env.float("WEBHOOK_TIMEOUT_S", default=10.0)  # the whole request
# Targets: https on public addresses only. Loopback (and plain http to it) in development and
# tests; private networks listed here (CIDR) for an internal receiver.
WEBHOOK_ALLOW_LOOPBACK: bool = env.bool("WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)
WEBHOOK_ALLOWED_NETWORKS: list[str] = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
WEBHOOK_LOG_RETENTION_DAYS: int = env.int("WEBHOOK_LOG_RETENTION_DAYS", default=30)
WEBHOOK_SUBSCRIPTION_CACHE_SECONDS: float = env.float(
    "WEBHOOK_SUBSCRIPTION_CACHE_SECONDS", default=5.0
)
# Sends the deliveries whose task was lost; on the embedded default, sends every delivery.
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {
    "task": "webhooks.sweep",
    "schedule": env.float("WEBHOOK_SWEEP_SECONDS", default=10.0),
}
