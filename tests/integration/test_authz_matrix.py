"""The authorization matrix (issue 11): every route x method x role x organisation of the row
has ONE expected answer, decided in :data:`MATRIX` below.

The routes are not listed by hand: they are read from the URL configuration (every pattern,
admin included), from the OpenAPI schema (every path x method) and from the WebSocket route
modules. A route found there without a row in the table fails
:func:`test_every_route_has_a_row`, naming it: a new endpoint cannot be added without deciding
who may use it. A row without a route fails too (a stale decision).

The cases run against one fixture world: two organisations, A (the principals' own) and B (the
other), each with a team, its supervisor (second factor passed), an organisation administrator,
two agents, a queue, a skill (the same code in both: codes are per organisation), a chat
endpoint and widget, a flow with a version, two citizens (one identity, the same number in both
organisations), an assigned interaction with messages and an internal note, an offered one with
its offer and routing decision, a wrap-up code and a canned response; plus a platform
administrator and a supervisor of no team in A. A route's parameters are filled with A's rows
("own") or B's ("other").

Every request runs in a savepoint that is rolled back, so cases do not disturb each other; an
unsafe request by a principal of A is followed, inside that savepoint, by a digest of every row
of B (all registered models, one query): a change to B's rows fails the case, naming the
request. Every 200 answer to a principal of A (the platform administrator aside) must not
contain B's marker (``zzOTHERzz``, in B's names, messages and notes); a supervisor of no team
must not see A's marker either (``zzOWNzz``).

Expected answers are the REQUIRED behaviour of issue 11, not whatever the code does today.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone

# Hundreds of requests through the whole middleware stack per interface: more than the suite's
# default 300 s on a loaded machine (about a minute each on an idle one).
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(1500)]

# --------------------------------------------------------------------------- vocabulary

LOGIN = "login"  # a redirect to a login page (the site's or the admin's)
OTP = "otp"  # a redirect to the second-factor pages
ADMIN_INDEX = "admin-index"  # the admin's "this object does not exist" redirect to its index
ACCEPT, REJECT = "accept", "reject"  # WebSocket handshake

HIDDEN = frozenset({403, 404})  # refused without telling whether the row exists
ANON_API = frozenset({401, 403})  # the API refuses an unauthenticated call
# An HTML form post the role may make: the view did its work (200, or a redirect back) or
# answered on the form itself (400). Never a refusal, never a login page.
DONE = frozenset({200, 302, 400})
# A supervisor of no team on a supervision page: an empty page or a refusal, nothing shown.
LONE_PAGE = frozenset({200, 403})
# The admin refusing an object outside the user's rows: its "does not exist" redirect or 403/404.
ADMIN_HIDDEN = frozenset({ADMIN_INDEX, 403, 404})
# A form post the admin accepted (saved: redirect) or answered with the form's errors (200).
ADMIN_DONE = frozenset({200, 302})

MARK_OWN, MARK_OTHER = "zzOWNzz", "zzOTHERzz"

ROLES = (
    "anonymous",
    "agent",  # an agent of A (holds A's assigned interaction, has A's pending offer)
    "supervisor",  # supervises A's team
    "lone_supervisor",  # a supervisor of A who supervises no team: sees nothing
    "org_admin",  # administrator of organisation A
    "platform_admin",  # every organisation
    "service_read",  # A's read-only service token (apitokens)
    "service_write",  # A's read-write service token (apitokens)
    "dpo",  # A's data-protection officer (second factor passed): the privacy pages only
)
SERVICE_ROLES = ("service_read", "service_write")

Expect = Any  # an int status, a word above, a frozenset of those, or {"own": .., "other": ..}


def OO(own: Expect, other: Expect) -> dict[str, Expect]:
    """A different answer for a row of the principal's own organisation and of the other."""
    return {"own": own, "other": other}


def api(
    *,
    anon: Expect,
    agent: Expect,
    sup: Expect,
    lone: Expect,
    oadm: Expect,
    padm: Expect,
    sread: Expect,
    swrite: Expect,
    dpo: Expect = 403,
) -> dict[str, Expect]:
    """A REST answer for every role (all eight must be decided; the data-protection officer
    has no model permission: 403 unless said otherwise)."""
    values = (anon, agent, sup, lone, oadm, padm, sread, swrite, dpo)
    return dict(zip(ROLES, values, strict=True))


def web(
    *,
    anon: Expect,
    agent: Expect,
    sup: Expect,
    lone: Expect,
    oadm: Expect,
    padm: Expect,
    dpo: Expect | None = None,
) -> dict[str, Expect]:
    """An HTML / socket answer: a service token is no session, it gets what anonymous gets.
    The data-protection officer (signed in, second factor passed, no agent profile, not staff,
    no team) gets, unless said otherwise, what a supervisor of no team gets (nothing), except
    on pages for staff only (the admin's), where an agent's answer (its login page) applies."""
    if dpo is None:
        dpo = LOGIN if agent == LOGIN else lone
    return api(
        anon=anon,
        agent=agent,
        sup=sup,
        lone=lone,
        oadm=oadm,
        padm=padm,
        sread=anon,
        swrite=anon,
        dpo=dpo,
    )


def public(answer: Expect) -> dict[str, Expect]:
    """The same for everyone: the route has its own authentication (a provider's signature, a
    widget key) or none (a login page)."""
    return web(anon=answer, agent=answer, sup=answer, lone=answer, oadm=answer, padm=answer)


# Shorthands for the REST API: reading a row (own: 200; other organisation: 404, never 403).
READ_ROW = OO(200, 404)
API_READ_ROW = api(
    anon=ANON_API,
    agent=READ_ROW,
    sup=READ_ROW,
    lone=404,
    oadm=READ_ROW,
    padm=200,
    sread=READ_ROW,
    swrite=READ_ROW,
)
API_LIST = api(
    anon=ANON_API, agent=200, sup=200, lone=200, oadm=200, padm=200, sread=200, swrite=200
)
# Team-level configuration (queues, skills): supervisors and administrators change it.
API_CONFIG_CHANGE = api(
    anon=ANON_API,
    agent=OO(403, HIDDEN),
    sup=OO(200, 404),
    lone=404,
    oadm=OO(200, 404),
    padm=200,
    sread=OO(403, HIDDEN),
    swrite=OO(200, 404),
)
# Figures of the supervision (the stats API): supervisors and above, service tokens.
API_STATS = api(
    anon=ANON_API, agent=403, sup=200, lone=200, oadm=200, padm=200, sread=200, swrite=200
)
# Pages of the supervision and the flow editor without a row in the URL.
SUP_PAGE = web(anon=LOGIN, agent=403, sup=200, lone=LONE_PAGE, oadm=200, padm=200)
SUP_POST = web(anon=LOGIN, agent=403, sup=DONE, lone=DONE | {403}, oadm=DONE, padm=DONE)
# ... and with one: own row (a team's agent, queue, interaction; the organisation's flow).
SUP_ROW_PAGE = web(
    anon=LOGIN, agent=403, sup=OO(200, HIDDEN), lone=HIDDEN, oadm=OO(200, HIDDEN), padm=200
)
SUP_ROW_POST = web(
    anon=LOGIN, agent=403, sup=OO(DONE, HIDDEN), lone=HIDDEN, oadm=OO(DONE, HIDDEN), padm=DONE
)
# The agent console: agents only (supervisors and administrators here have no agent profile),
# and only on what the agent holds or serves.
CONSOLE_PAGE = web(anon=LOGIN, agent=200, sup=403, lone=403, oadm=403, padm=403)
CONSOLE_POST = web(anon=LOGIN, agent=DONE, sup=403, lone=403, oadm=403, padm=403)
CONSOLE_ROW_PAGE = web(anon=LOGIN, agent=OO(200, HIDDEN), sup=403, lone=403, oadm=403, padm=403)
CONSOLE_ROW_POST = web(anon=LOGIN, agent=OO(DONE, HIDDEN), sup=403, lone=403, oadm=403, padm=403)
OFFER_POST = web(anon=LOGIN, agent=OO(DONE, HIDDEN | {409}), sup=403, lone=403, oadm=403, padm=403)
PRIVACY_PAGE = web(anon=LOGIN, agent=403, sup=403, lone=403, oadm=403, padm=200, dpo=200)
PRIVACY_POST = web(anon=LOGIN, agent=403, sup=403, lone=403, oadm=403, padm=DONE, dpo=DONE)
PRIVACY_ROW_PAGE = web(
    anon=LOGIN, agent=403, sup=403, lone=403, oadm=403, padm=200, dpo=OO(200, 404)
)
PRIVACY_ROW_POST = web(
    anon=LOGIN, agent=403, sup=403, lone=403, oadm=403, padm=DONE, dpo=OO(DONE, 404)
)
WS_AGENT = web(anon=REJECT, agent=ACCEPT, sup=REJECT, lone=REJECT, oadm=REJECT, padm=REJECT)
WS_SUPERVISOR = web(
    anon=REJECT,
    agent=REJECT,
    sup=ACCEPT,
    lone=frozenset({ACCEPT, REJECT}),
    oadm=ACCEPT,
    padm=ACCEPT,
)


def admin_model(
    label: str, *, view: str, add: str, change: str, delete: str
) -> dict[str, dict[str, dict[str, Expect]]]:
    """The rows of one model's admin pages. ``view``/``add``/``change``/``delete`` name who holds
    that right on the rows of their scope: ``S`` supervisor (of a team), ``A`` organisation
    administrator, ``P`` platform administrator (empty: nobody, e.g. an audit log is never
    edited). Agents are not staff: the admin's login page. A staff user without the right gets
    403; a row outside their scope (another organisation's, or anything for a supervisor of no
    team), the admin's "does not exist" redirect or 403/404. A supervisor of no team gets an
    empty list."""
    app_label, model = label.split(".")

    def who(rights: str, yes: Expect, *, row: bool) -> dict[str, Expect]:
        def one(letter: str) -> Expect:
            if not row:
                return yes if letter in rights else 403
            if letter not in rights:
                return ADMIN_HIDDEN
            return yes if letter == "P" else OO(yes, ADMIN_HIDDEN)

        return web(
            anon=LOGIN,
            agent=LOGIN,
            sup=one("S"),
            lone=ADMIN_HIDDEN if row else one("S"),
            oadm=one("A"),
            padm=one("P"),
        )

    base = f"admin:{app_label}_{model}"
    return {
        f"{base}_changelist": {"GET": who(view, 200, row=False)},
        f"{base}_add": {"GET": who(add, 200, row=False)},
        f"{base}_change": {
            "GET": who(view, 200, row=True),
            "POST": who(change, ADMIN_DONE, row=True),
        },
        # Confirmed ("post=yes"): deleted (redirect), or refused on the page (protected rows).
        f"{base}_delete": {"POST": who(delete, ADMIN_DONE, row=True)},
        f"{base}_history": {"GET": who(view, 200, row=True)},
        # The bare object URL only redirects staff to its change page (which decides).
        f"admin/{app_label}/{model}/<path:object_id>/": {
            "GET": web(anon=LOGIN, agent=LOGIN, sup=302, lone=302, oadm=302, padm=302)
        },
    }


# --------------------------------------------------------------------------- THE TABLE

MATRIX: dict[str, dict[str, dict[str, Expect]]] = {
    # ---------------------------------------------------------------- site and accounts
    # Each role's own home: the console, the wallboard, the privacy pages (test_landing.py).
    "home": {"GET": web(anon=LOGIN, agent=302, sup=302, lone=302, oadm=302, padm=302)},
    "healthz": {"GET": public(200)},
    "favicon": {"GET": public(302)},  # to the static icon
    # Prometheus' scrape: off unless METRICS_TOKEN is set (404), then a bearer token, never a
    # session, whatever the role (403: tests/integration/test_metrics.py).
    "metrics": {"GET": public(HIDDEN)},
    "login": {"GET": public(200), "POST": public(200)},  # an empty form: its errors
    "logout": {"POST": public(LOGIN)},  # back to the login page, logged out
    "otp-verify": {  # the agent has no device: sent to enrol
        "GET": web(anon=LOGIN, agent=302, sup=200, lone=200, oadm=200, padm=200),
        "POST": web(anon=LOGIN, agent=302, sup=200, lone=200, oadm=200, padm=200),
    },
    "otp-enrol": {"GET": web(anon=LOGIN, agent=200, sup=302, lone=302, oadm=302, padm=302)},
    # Sign-in through an organisation's OpenID Connect provider (sso/): public like the login
    # page. Both sides have an enabled provider (its discovery document cached): the browser is
    # sent to it. A callback without a sign-in started in this session: refused.
    "sso-login": {"GET": public(302)},
    "sso-callback": {"GET": public(400)},
    "set_language": {"POST": public(302)},
    # ---------------------------------------------------------------- public: own authentication
    # Provider webhooks: an unsigned callback is refused, whoever is logged in.
    "twilio-sms": {"POST": public(403)},
    "twilio-sms-status": {"POST": public(403)},
    "twilio-voice-incoming": {"POST": public(403)},
    "twilio-voice-gather": {"POST": public(403)},
    "twilio-voice-wait": {"POST": public(403)},
    "twilio-voice-whisper": {"POST": public(403)},
    "twilio-voice-dial": {"POST": public(403)},
    "twilio-voice-recording": {"POST": public(403)},
    "twilio-voice-status": {"POST": public(403)},
    # The chat widget's public configuration (the key is public: it is in the partner's page).
    "chat-widget-config": {"GET": public(200)},
    # The link a citizen follows to confirm the transcript's address (a made-up token here).
    "chat-transcript-confirm": {"GET": public(404)},
    # The chat demo page is off unless DEBUG or CHAT_DEMO_PAGE (both off in tests).
    "chat-demo": {"GET": public(404)},
    # "Follow my request": a signed link is its own authentication (a made-up token here: the
    # same 404 as a tampered or revoked one, whoever asks).
    "publicquality:follow": {"GET": public(404)},
    # Each organisation's published quality figures: public, own and other alike (the page and
    # its open data show only that organisation's figures: test_public_quality.py).
    "publicquality:quality": {"GET": public(200)},
    "publicquality:quality-csv": {"GET": public(200)},
    "publicquality:quality-json": {"GET": public(200)},
    # The satisfaction survey's pages (surveys/): the signed link is their only credential (a
    # made-up token here: "not valid", whoever asks). The phone's key presses: a signed webhook.
    "survey-answer": {"GET": public(404), "POST": public(404)},
    "survey-chat-answer": {"POST": public(404)},
    "twilio-voice-survey": {"POST": public(403)},
    # ---------------------------------------------------------------- privacy (the officer's)
    # Data-protection officers of A (their organisation's citizens only) and platform
    # administrators; nobody else, whatever their role. The bodies are empty: a rectification
    # with nothing to change (302), an erasure without its confirmation box (400).
    "privacy:search": {"GET": PRIVACY_PAGE},
    "privacy:citizen": {"GET": PRIVACY_ROW_PAGE},
    "privacy:export": {"GET": PRIVACY_ROW_PAGE},
    "privacy:rectify": {"POST": PRIVACY_ROW_POST},
    "privacy:erase": {"POST": PRIVACY_ROW_POST},
    "privacy:retention": {"GET": PRIVACY_PAGE, "POST": PRIVACY_POST},
    "privacy:audit": {"GET": PRIVACY_PAGE},
    # ---------------------------------------------------------------- agent console
    "console:console": {"GET": CONSOLE_PAGE},
    # The agent's own state (what the console re-reads after a failed action).
    "console:snapshot": {"GET": CONSOLE_PAGE},
    "console:state": {"POST": CONSOLE_POST},
    "console:channels": {"POST": CONSOLE_POST},
    # An offer not made to the agent (another organisation's included) answers exactly like one
    # that is gone (409, "no longer available"): it tells nothing about the offer.
    "console:accept": {"POST": OFFER_POST},
    "console:decline": {"POST": OFFER_POST},
    "console:workspace": {"GET": CONSOLE_ROW_PAGE},
    "console:thread": {"GET": CONSOLE_ROW_PAGE},
    "console:reply": {"POST": CONSOLE_ROW_POST},
    "console:note": {"POST": CONSOLE_ROW_POST},
    "console:wrap-up": {"POST": CONSOLE_ROW_POST},
    "console:close": {"POST": CONSOLE_ROW_POST},
    "console:transfer": {"POST": CONSOLE_ROW_POST},
    "console:citizen": {"GET": CONSOLE_ROW_PAGE},
    # An attachment of a message, to who may see its interaction. The world's message has none:
    # its own answers 404 too (tests/integration/console/test_failure_ux.py serves them).
    "console:attachment": {
        "GET": web(anon=LOGIN, agent=OO(404, HIDDEN), sup=403, lone=403, oadm=403, padm=403)
    },
    # Send a message that could not be sent again (or on the citizen's other channel): like a
    # reply, only the agent holding the conversation. The world's message is the citizen's
    # (inbound): refused (409); another organisation's message is not found.
    "console:retry": {
        "POST": web(anon=LOGIN, agent=OO(409, HIDDEN), sup=403, lone=403, oadm=403, padm=403)
    },
    "console:citizen-edit": {"POST": CONSOLE_ROW_POST},
    "console:identity-add": {"POST": CONSOLE_ROW_POST},
    "console:identity-remove": {"POST": CONSOLE_ROW_POST},
    "console:citizen-merge": {"POST": CONSOLE_ROW_POST},
    "console:settings": {"GET": CONSOLE_PAGE},
    "console:activity": {"GET": CONSOLE_PAGE},
    "console:past-conversation": {"GET": CONSOLE_ROW_PAGE},
    "console:session-ping": {
        "POST": web(anon=401, agent=200, sup=200, lone=200, oadm=200, padm=200)
    },
    # ---------------------------------------------------------------- supervision
    "supervision:wallboard": {"GET": SUP_PAGE},
    "supervision:agents": {"GET": SUP_PAGE},
    "supervision:agent-state": {"POST": SUP_ROW_POST},
    "supervision:interactions": {"GET": SUP_PAGE},
    "supervision:interaction-reassign": {"POST": SUP_ROW_POST},
    "supervision:skills": {"GET": SUP_PAGE},
    "supervision:skills-bulk": {"POST": SUP_POST},
    "supervision:skills-history": {"GET": SUP_PAGE},
    "supervision:queues": {"GET": SUP_PAGE},
    "supervision:queue-settings": {"GET": SUP_ROW_PAGE, "POST": SUP_ROW_POST},
    "supervision:reports": {"GET": SUP_PAGE},
    "supervision:staffing": {"GET": SUP_PAGE},
    "supervision:whatif": {"GET": SUP_PAGE, "POST": SUP_POST},
    # ---------------------------------------------------------------- flow editor
    "supervision:flows": {"GET": SUP_PAGE},
    "supervision:flow-editor": {"GET": SUP_ROW_PAGE},
    "supervision:flow-save": {"POST": SUP_ROW_POST},
    "supervision:flow-validate": {"POST": SUP_ROW_POST},
    "supervision:flow-test": {"POST": SUP_ROW_POST},
    "supervision:flow-publish": {"POST": SUP_ROW_POST},
    "supervision:flow-rollback": {"POST": SUP_ROW_POST},
    "supervision:flow-bindings": {"POST": SUP_ROW_POST},
    # ---------------------------------------------------------------- WebSockets
    "ws:ws/console/": {"CONNECT": WS_AGENT},
    "ws:ws/supervision/wallboard/": {"CONNECT": WS_SUPERVISOR},
    # The citizen's chat: no session, the widget's key and its allowed origins.
    "ws:ws/chat/<str:widget_key>/": {"CONNECT": public(ACCEPT)},
    # ---------------------------------------------------------------- REST API
    # The API's root only lists the endpoints' addresses: public, or refused to anonymous.
    "api:api-root": {
        "GET": api(
            anon=frozenset({200, 401}),
            agent=200,
            sup=200,
            lone=200,
            oadm=200,
            padm=200,
            sread=200,
            swrite=200,
            dpo=200,  # the API's index, to anyone signed in
        )
    },
    "api:api-schema": {"GET": public(200)},
    "api:api-docs": {"GET": public(200)},
    # A personal token: from credentials (an empty request is invalid), or from a session that
    # passed its second factor; never from another token. DELETE revokes the token presented.
    "api:api-token": {
        "POST": api(
            anon=400,
            agent=201,
            sup=201,
            lone=201,
            oadm=201,
            padm=201,
            sread=403,
            swrite=403,
            dpo=201,  # a token that reaches nothing more than the session (403 everywhere)
        ),
        "DELETE": api(
            anon=400,
            agent=400,
            sup=400,
            lone=400,
            oadm=400,
            padm=400,
            sread=204,
            swrite=204,
            dpo=400,
        ),
    },
    "api:contact-list": {
        "GET": API_LIST,
        "POST": api(
            anon=ANON_API,
            agent=201,
            sup=201,
            lone=403,
            oadm=201,
            padm=frozenset({201, 400}),  # no organisation of their own: must say which
            sread=403,
            swrite=201,
        ),
    },
    "api:contact-detail": {
        "GET": API_READ_ROW,
        # Citizens are the organisation's: an agent corrects anyone's record.
        "PUT": api(
            anon=ANON_API,
            agent=OO(200, 404),
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        ),
        "PATCH": api(
            anon=ANON_API,
            agent=OO(200, 404),
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        ),
    },
    "api:contact-identities": {
        "POST": api(
            anon=ANON_API,
            agent=OO(201, 404),
            sup=OO(201, 404),
            lone=404,
            oadm=OO(201, 404),
            padm=201,
            sread=OO(403, HIDDEN),
            swrite=OO(201, 404),
        )
    },
    "api:contact-merge": {  # supervisors and above
        "POST": api(
            anon=ANON_API,
            agent=OO(403, HIDDEN),
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        )
    },
    "api:interaction-list": {
        "GET": API_LIST,
        # other: the body names B's queue; nobody of A creates in B.
        "POST": api(
            anon=ANON_API,
            agent=OO(201, 400),
            sup=OO(201, 400),
            lone=frozenset({400, 403}),
            oadm=OO(201, 400),
            padm=201,
            sread=403,
            swrite=OO(201, 400),
        ),
    },
    "api:interaction-detail": {"GET": API_READ_ROW},
    # Messages and internal notes: the organisation's own (and shared) interactions only.
    "api:interaction-messages": {"GET": API_READ_ROW},
    # The agent holds A's interaction; B's is held by B's agent.
    "api:interaction-transition": {
        "POST": api(
            anon=ANON_API,
            agent=OO(200, 404),
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        )
    },
    "api:queue-list": {
        "GET": API_LIST,
        # other: the body names B's team.
        "POST": api(
            anon=ANON_API,
            agent=403,
            sup=OO(201, 400),
            lone=frozenset({400, 403}),
            oadm=OO(201, 400),
            padm=201,
            sread=403,
            swrite=OO(201, 400),
        ),
    },
    "api:queue-detail": {
        "GET": API_READ_ROW,
        "PUT": API_CONFIG_CHANGE,
        "PATCH": API_CONFIG_CHANGE,
    },
    "api:skill-list": {
        "GET": API_LIST,
        "POST": api(
            anon=ANON_API,
            agent=403,
            sup=201,
            lone=403,
            oadm=201,
            padm=frozenset({201, 400}),
            sread=403,
            swrite=201,
        ),
    },
    "api:skill-detail": {
        "GET": API_READ_ROW,
        "PUT": API_CONFIG_CHANGE,
        "PATCH": API_CONFIG_CHANGE,
    },
    "api:agent-list": {"GET": API_LIST},
    # "own" is the agent principal's own profile (in the supervisor's team).
    "api:agent-detail": {
        "GET": API_READ_ROW,
        # An agent changes nobody else's profile (refused at the model permission: 403 for
        # any row); their own may be left to the console's settings (403) or allowed (200).
        "PUT": api(
            anon=ANON_API,
            agent=OO(frozenset({200, 400, 403}), HIDDEN),  # the body restates the team
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        ),
        "PATCH": api(
            anon=ANON_API,
            agent=OO(frozenset({200, 403}), HIDDEN),
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        ),
    },
    # Replacing an agent's skills deletes some: supervisors and administrators (a service
    # token adds and changes, never deletes).
    "api:agent-set-skills": {
        "PUT": api(
            anon=ANON_API,
            agent=403,
            sup=OO(200, 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(403, HIDDEN),
        )
    },
    "api:team-list": {"GET": API_LIST},
    "api:team-detail": {
        "GET": API_READ_ROW,
        # PUT restates the supervisors: only organisation administrators change who
        # supervises a team (a supervisor may be refused even when nothing changes).
        "PUT": api(
            anon=ANON_API,
            agent=OO(403, HIDDEN),
            sup=OO(frozenset({200, 403}), 404),
            lone=404,
            oadm=OO(200, 404),
            padm=200,
            sread=OO(403, HIDDEN),
            swrite=OO(200, 404),
        ),
        "PATCH": API_CONFIG_CHANGE,  # the name only
    },
    # Offers are filtered, not permission-checked: the officer's list is empty, rows not found.
    "api:offer-list": {"GET": {**API_LIST, "dpo": 200}},
    "api:offer-detail": {
        "GET": api(
            anon=ANON_API,
            agent=READ_ROW,  # the offer made to them
            sup=READ_ROW,
            lone=404,
            oadm=READ_ROW,
            padm=200,
            sread=READ_ROW,
            swrite=READ_ROW,
            dpo=404,
        )
    },
    # Only the agent the offer was made to answers it.
    "api:offer-accept": {
        "POST": api(
            anon=ANON_API,
            agent=OO(200, 404),
            sup=HIDDEN,
            lone=HIDDEN,
            oadm=HIDDEN,
            padm=HIDDEN,
            sread=HIDDEN,
            swrite=HIDDEN,
            dpo=HIDDEN,
        )
    },
    "api:offer-decline": {
        "POST": api(
            anon=ANON_API,
            agent=OO(200, 404),
            sup=HIDDEN,
            lone=HIDDEN,
            oadm=HIDDEN,
            padm=HIDDEN,
            sread=HIDDEN,
            swrite=HIDDEN,
            dpo=HIDDEN,
        )
    },
    "api:routing-decision-list": {
        "GET": api(
            anon=ANON_API, agent=403, sup=200, lone=200, oadm=200, padm=200, sread=200, swrite=200
        )
    },
    "api:routing-decision-detail": {
        "GET": api(
            anon=ANON_API,
            agent=403,
            sup=READ_ROW,
            lone=404,
            oadm=READ_ROW,
            padm=200,
            sread=READ_ROW,
            swrite=READ_ROW,
        )
    },
    "api:presence-list": {  # everyone's presence: supervisors and above, in their scope
        "GET": api(
            anon=ANON_API, agent=403, sup=200, lone=200, oadm=200, padm=200, sread=200, swrite=200
        )
    },
    # The caller's own presence: agents (an account without an agent profile is refused).
    "api:presence-me": {
        "GET": api(
            anon=ANON_API, agent=200, sup=403, lone=403, oadm=403, padm=403, sread=403, swrite=403
        ),
        "PATCH": api(
            anon=ANON_API, agent=200, sup=403, lone=403, oadm=403, padm=403, sread=403, swrite=403
        ),
    },
    "api:presence-heartbeat": {
        "POST": api(
            anon=ANON_API, agent=204, sup=403, lone=403, oadm=403, padm=403, sread=403, swrite=403
        )
    },
    # The stats API (supervision/api.py): the wallboard's and the reports' figures, to those
    # who see the wallboard (in their scope: a supervisor of no team gets empty lists) and to
    # the organisation's service tokens; agents and the data-protection officer are refused.
    "api:stats-live": {"GET": API_STATS},
    "api:stats-reports": {"GET": API_STATS},
    # ---------------------------------------------------------------- Django admin
    "admin:index": {"GET": web(anon=LOGIN, agent=LOGIN, sup=200, lone=200, oadm=200, padm=200)},
    "admin:login": {  # staff already logged in are sent to the index
        "GET": web(
            anon=200,
            agent=200,
            sup=ADMIN_INDEX,
            lone=ADMIN_INDEX,
            oadm=ADMIN_INDEX,
            padm=ADMIN_INDEX,
            dpo=200,  # not staff: the login page, as for agents
        )
    },
    "admin:logout": {"POST": public(frozenset({200, 302, LOGIN, ADMIN_INDEX}))},
    "admin:password_change": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=200, lone=200, oadm=200, padm=200)
    },
    "admin:password_change_done": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=200, lone=200, oadm=200, padm=200)
    },
    "admin:jsi18n": {"GET": web(anon=LOGIN, agent=LOGIN, sup=200, lone=200, oadm=200, padm=200)},
    # Without parameters the autocomplete refuses (403); it never lists rows out of scope.
    "admin:autocomplete": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=403, lone=403, oadm=403, padm=403)
    },
    # The "view on site" shortcut (an interaction has no public page: 404 for everyone).
    "admin:view_on_site": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=404, lone=404, oadm=404, padm=404)
    },
    # The contacts app's index: its models the user may see.
    "admin:app_list": {"GET": web(anon=LOGIN, agent=LOGIN, sup=200, lone=200, oadm=200, padm=200)},
    "admin/(?P<url>.*)$": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=404, lone=404, oadm=404, padm=404)
    },
    # A user's password: organisation administrators, for their organisation's users.
    "admin:auth_user_password_change": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=403, lone=403, oadm=OO(200, ADMIN_HIDDEN), padm=200)
    },
    # A TOTP device's secret: nobody but platform administrators.
    "admin:otp_totp_totpdevice_config": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=403, lone=403, oadm=HIDDEN, padm=200)
    },
    "admin:otp_totp_totpdevice_qrcode": {
        "GET": web(anon=LOGIN, agent=LOGIN, sup=403, lone=403, oadm=HIDDEN, padm=200)
    },
    **admin_model("auth.group", view="P", add="P", change="P", delete="P"),
    **admin_model("auth.user", view="AP", add="AP", change="AP", delete="AP"),
    # Organisations: platform administrators; an organisation administrator manages only theirs.
    **admin_model("organisations.organisation", view="AP", add="P", change="AP", delete="P"),
    # Memberships: an organisation administrator sees and edits their organisation's; a new one
    # comes with a new user (platform administrators add them directly).
    **admin_model("organisations.membership", view="AP", add="P", change="AP", delete="AP"),
    # Sharing agreements: platform administrators only; revoked, never deleted (the audit stays).
    **admin_model("organisations.sharingagreement", view="P", add="P", change="P", delete=""),
    # Service tokens: listed, made and revoked (an action) by the organisation's administrators;
    # never edited or deleted (the row stays, with who revoked it).
    **admin_model("apitokens.servicetoken", view="AP", add="AP", change="", delete=""),
    **admin_model("otp_totp.totpdevice", view="P", add="P", change="P", delete="P"),
    # Login-attempt logs: read and cleared by platform administrators, never written.
    **admin_model("axes.accessattempt", view="P", add="", change="P", delete="P"),
    **admin_model("axes.accesslog", view="P", add="", change="P", delete="P"),
    **admin_model("axes.accessfailurelog", view="P", add="", change="P", delete="P"),
    **admin_model("contacts.contact", view="SAP", add="SAP", change="SAP", delete="AP"),
    **admin_model("contacts.case", view="SAP", add="SAP", change="SAP", delete="AP"),
    # Merges and identity removals are made by the console's and API's actions, not the admin.
    **admin_model("contacts.contactmerge", view="SAP", add="", change="AP", delete="AP"),
    **admin_model("contacts.identityremoval", view="SAP", add="", change="AP", delete="AP"),
    **admin_model("interactions.interaction", view="SAP", add="SAP", change="SAP", delete="AP"),
    **admin_model("configuration.skill", view="SAP", add="SAP", change="SAP", delete="AP"),
    **admin_model("configuration.queue", view="SAP", add="SAP", change="SAP", delete="AP"),
    **admin_model("agents.agentprofile", view="SAP", add="AP", change="SAP", delete="AP"),
    **admin_model("configuration.team", view="SAP", add="AP", change="SAP", delete="AP"),
    **admin_model("channels_inbound.endpoint", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("channels_sms.inboundsms", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("channels_sms.outboundsms", view="AP", add="AP", change="AP", delete="AP"),
    # Provider-level records (not one organisation's): platform administrators.
    **admin_model("channels_sms.smsoptout", view="P", add="P", change="P", delete="P"),
    **admin_model("channels_sms.smsstatusevent", view="P", add="P", change="P", delete="P"),
    **admin_model("channels_email.imapmailboxstate", view="P", add="P", change="P", delete="P"),
    **admin_model("channels_voice.call", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("channels_email.emailthreadentry", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model(
        "channels_email.emailacknowledgement", view="AP", add="AP", change="AP", delete="AP"
    ),
    **admin_model("channels_chat.chatwidget", view="AP", add="AP", change="AP", delete="AP"),
    # Chat sessions are opened by visitors only.
    **admin_model("channels_chat.chatsession", view="AP", add="", change="AP", delete="AP"),
    **admin_model("flows.flow", view="SAP", add="SAP", change="SAP", delete="AP"),
    **admin_model("flows.flowversion", view="SAP", add="SAP", change="SAP", delete="AP"),
    **admin_model("console.wrapupcode", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("console.cannedresponse", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("console.interactionwrapup", view="AP", add="AP", change="AP", delete="AP"),
    # Announced commitments (published beside the quality figures): the organisation's admins.
    **admin_model("publicquality.commitment", view="AP", add="AP", change="AP", delete="AP"),
    # A queue's satisfaction survey: set by its supervisors and the organisation's administrators.
    **admin_model("surveys.surveysettings", view="SAP", add="SAP", change="SAP", delete="AP"),
    # Follow-up links are made by acknowledgements only; listed and revoked by the admins.
    **admin_model("publicquality.followlink", view="AP", add="", change="AP", delete="AP"),
    # Outgoing webhooks: the organisation's administrators; the delivery log is read only
    # (its "send again" is an action of the list), deleted with its subscription.
    **admin_model("webhooks.subscription", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("webhooks.delivery", view="AP", add="", change="", delete="AP"),
    # A subscription's "send a test delivery" button: a POST, back to its page.
    "admin:webhooks_subscription_test_delivery": {
        "POST": web(
            anon=LOGIN, agent=LOGIN, sup=403, lone=403, oadm=OO(302, ADMIN_HIDDEN), padm=302
        )
    },
    # Single sign-on: the organisation's identity provider and the links of its users to their
    # sub there; its administrators only (client secrets, who may sign in).
    **admin_model("sso.identityprovider", view="AP", add="AP", change="AP", delete="AP"),
    **admin_model("sso.externalidentity", view="AP", add="AP", change="AP", delete="AP"),
}

# --------------------------------------------------------------------------- route discovery


@dataclass(frozen=True)
class Route:
    key: str  # the MATRIX key
    pattern: str  # the full pattern, for messages and unnamed routes
    name: str | None  # the name to reverse, or None (built from the pattern)
    kwargs: tuple[str, ...]


_KWARG = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>")


def _walk(
    patterns: list[Any], prefix: str = "", namespace: str | None = None
) -> Iterator[tuple[str, str | None]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = namespace
            if p.namespace:
                ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            name = p.name and (f"{namespace}:{p.name}" if namespace else p.name)
            yield prefix + str(p.pattern), name


def url_routes() -> dict[str, Route]:
    """Every route of the URL configuration, by its MATRIX key (first pattern of a name: the
    API's format-suffix twins share their route's name)."""
    routes: dict[str, Route] = {}
    for pattern, name in _walk(get_resolver().url_patterns):
        kwargs = tuple(a or b for a, b in _KWARG.findall(pattern) if (a or b) != "format")
        if name is None:
            key = pattern
        elif pattern.startswith("api/"):
            key = f"api:{name}"
        else:
            key = name
        routes.setdefault(key, Route(key, pattern, name, kwargs))
    return routes


def schema_operations() -> set[tuple[str, str]]:
    """(MATRIX key, METHOD) of every operation of the OpenAPI schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = set()
    for path, item in schema["paths"].items():
        match = resolve(re.sub(r"\{[^}]+\}", "1", path))
        for method in item:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                operations.add((f"api:{match.url_name}", method.upper()))
    return operations


def ws_routes() -> dict[str, Route]:
    """Every WebSocket route: each ``*websocket_urlpatterns`` list of ``contactcentre.ws_urls``
    and of each app's ``ws_urls`` module (an app without one has no socket)."""
    modules = ["contactcentre.ws_urls"] + [
        f"{config.name}.ws_urls"
        for config in apps.get_app_configs()
        if config.name != "contactcentre"
    ]
    routes: dict[str, Route] = {}
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for attr, value in vars(module).items():
            if not attr.endswith("websocket_urlpatterns"):
                continue
            for pattern, _name in _walk(value):
                kwargs = tuple(a or b for a, b in _KWARG.findall(pattern))
                routes[f"ws:{pattern}"] = Route(f"ws:{pattern}", pattern, None, kwargs)
    return routes


def interface_of(key: str) -> str:
    if key.startswith("api:"):
        return "rest"
    if key.startswith(("admin:", "admin/")):
        return "admin"
    if key.startswith("console:"):
        return "console"
    if key.startswith("supervision:"):
        return "supervision"
    if key.startswith("ws:"):
        return "websocket"
    return "site"


def test_every_route_has_a_row() -> None:
    """A route of the URLconf, an operation of the OpenAPI schema or a WebSocket route without
    a decision in MATRIX fails here, by name; so does a row for a route that is gone."""
    routes = {**url_routes(), **ws_routes()}
    problems = [
        f"route {key!r} ({route.pattern}) has no row in MATRIX: decide who may use it"
        for key, route in sorted(routes.items())
        if key not in MATRIX
    ]
    problems += [
        f"OpenAPI operation {method} {key!r} has no row in MATRIX[{key!r}]"
        for key, method in sorted(schema_operations())
        if method not in MATRIX.get(key, {})
    ]
    problems += [f"MATRIX row {key!r} matches no route" for key in MATRIX if key not in routes]
    for key, methods in MATRIX.items():
        for method, by_role in methods.items():
            missing = [r for r in ROLES if r not in by_role]
            if missing:
                problems.append(f"MATRIX[{key!r}][{method!r}] decides nothing for {missing}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the world


@dataclass
class Side:
    org: Any
    team: Any
    supervisor: Any
    org_admin: Any
    agent: Any  # AgentProfile of the agent principal (for A)
    agent2: Any
    queue: Any
    skill: Any
    endpoint: Any
    widget: Any
    flow: Any
    version: Any
    contact: Any
    contact2: Any
    identity: Any
    case: Any
    interaction: Any
    message: Any
    note: Any
    offered: Any
    offer: Any
    decision: Any
    wrapup: Any
    canned: Any
    device: Any  # the supervisor's TOTP device
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    own: Side
    other: Side
    lone_supervisor: Any
    platform_admin: Any
    users: dict[str, Any]  # role -> user (None: anonymous; service roles absent)
    devices: dict[str, Any]


def _user(username: str, role: str | None, org: Any, *, staff: bool, mark: str) -> Any:
    user = get_user_model().objects.create_user(
        username, f"{username}@example.fr", "pw-Test-2026!", last_name=mark, is_staff=staff
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    if org is not None:
        from organisations.models import Membership

        Membership.objects.create(user=user, organisation=org)
    return user


def _device(user: Any) -> Any:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="matrix", confirmed=True)


def _side(tag: str, mark: str, user_mark: str) -> Side:
    from agents.models import AgentProfile
    from channels_inbound.chat.models import ChatWidget
    from channels_inbound.models import Endpoint
    from configuration.models import Queue, QueueSkill, Skill, Team
    from console.models import CannedResponse, WrapUpCode
    from contacts.models import Case, Contact, ContactIdentity
    from flows.models import Flow, FlowVersion
    from interactions.models import Interaction, Message
    from kernel.roles import ADMINISTRATOR, AGENT, SUPERVISOR
    from organisations.models import Organisation
    from routing.models import Offer, RoutingDecision

    now = timezone.now()
    low = tag.lower()
    org = Organisation.objects.create(name=f"Organisme {tag}", slug=f"organisme-{low}")
    team = Team.objects.create(organisation=org, name=f"Équipe {mark}")
    skill = Skill.objects.create(organisation=org, code="accueil", name=f"Accueil {mark}")
    queue = Queue.objects.create(organisation=org, code="general", name=f"File {mark}", team=team)
    QueueSkill.objects.create(queue=queue, skill=skill, min_level=1)
    supervisor = _user(f"{low}-sup", SUPERVISOR, org, staff=True, mark=user_mark)
    team.supervisors.add(supervisor)
    org_admin = _user(f"{low}-admin", ADMINISTRATOR, org, staff=True, mark=user_mark)
    agents = []
    for n in (1, 2):
        user = _user(f"{low}-agent{n}", AGENT, org, staff=False, mark=user_mark)
        agents.append(
            AgentProfile.objects.create(organisation=org, user=user, team=team, languages=["fr"])
        )
    endpoint = Endpoint.objects.create(
        organisation=org, channel="chat", address=f"widget-{low}", name=f"Chat {tag}", queue=queue
    )
    widget = ChatWidget.objects.create(
        organisation=org, endpoint=endpoint, allowed_origins="http://localhost"
    )
    flow = Flow.objects.create(organisation=org, name=f"Flux {mark}")
    version = FlowVersion.objects.create(flow=flow, number=1, graph={}, status="draft")
    contact = Contact.objects.create(organisation=org, display_name=f"Citoyen {mark}")
    contact2 = Contact.objects.create(organisation=org, display_name=f"Doublon {mark}")
    identity = ContactIdentity.objects.create(
        organisation=org, contact=contact, kind="phone", value="+33612345678"
    )
    case = Case.objects.create(
        organisation=org, contact=contact, reference=f"DOS-{tag}", subject=f"Dossier {mark}"
    )
    interaction = Interaction.objects.create(
        organisation=org,
        channel="chat",
        contact=contact,
        queue=queue,
        subject=f"Demande {mark}",
        status="assigned",
        assigned_agent=agents[0],
        queued_at=now,
        offered_at=now,
        assigned_at=now,
    )
    message = Message.objects.create(
        interaction=interaction, channel="chat", direction="inbound", text=f"Bonjour {mark}"
    )
    note = Message.objects.create(
        interaction=interaction,
        channel="chat",
        direction="note",
        text=f"Note interne {mark}",
        author=agents[0].user,
    )
    offered = Interaction.objects.create(
        organisation=org,
        channel="chat",
        contact=contact2,
        queue=queue,
        subject=f"Offerte {mark}",
        status="offered",
        assigned_agent=agents[0],
        queued_at=now,
        offered_at=now,
    )
    offer = Offer.objects.create(
        interaction=offered,
        agent=agents[0],
        channel="chat",
        status="pending",
        created_at=now,
        expires_at=now + timedelta(hours=2),  # the run may be long
    )
    decision = RoutingDecision.objects.create(
        interaction=offered, offer=offer, agent=agents[0], action="offer", rule="matrix", at=now
    )
    wrapup = WrapUpCode.objects.create(organisation=org, code="info", label=f"Information {mark}")
    canned = CannedResponse.objects.create(
        organisation=org, title=f"Réponse {mark}", text=f"Texte {mark}"
    )
    device = _device(supervisor)
    _device(org_admin)
    return Side(
        org=org,
        team=team,
        supervisor=supervisor,
        org_admin=org_admin,
        agent=agents[0],
        agent2=agents[1],
        queue=queue,
        skill=skill,
        endpoint=endpoint,
        widget=widget,
        flow=flow,
        version=version,
        contact=contact,
        contact2=contact2,
        identity=identity,
        case=case,
        interaction=interaction,
        message=message,
        note=note,
        offered=offered,
        offer=offer,
        decision=decision,
        wrapup=wrapup,
        canned=canned,
        device=device,
    )


def build_world() -> World:
    from kernel.roles import DATA_PROTECTION_OFFICER, SUPERVISOR, ensure_roles

    ensure_roles()
    own = _side("A", MARK_OWN, "")
    other = _side("B", MARK_OTHER, MARK_OTHER)
    lone = _user("a-lone", SUPERVISOR, own.org, staff=True, mark="")
    dpo = _user("a-dpo", DATA_PROTECTION_OFFICER, own.org, staff=False, mark="")
    padm = get_user_model().objects.create_superuser("platform", "platform@example.fr", "pw-T-1!")
    devices = {
        "lone_supervisor": _device(lone),
        "platform_admin": _device(padm),
        "dpo": _device(dpo),
    }
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from apitokens.actions import do_create_service_token

    for side in (own, other):
        side.extra["service_token"], _raw = do_create_service_token(
            side.org_admin, name="intégration", organisation_id=side.org.pk, scope="read"
        )
    # Revoked sharing agreements (no effect on what anyone sees): one owned by each side.
    from organisations.models import SharingAgreement

    for owner, grantee in ((own, other), (other, own)):
        owner.extra["agreement"] = SharingAgreement.objects.create(
            owner=owner.org,
            grantee=grantee.org,
            reason=f"Guichet {MARK_OTHER if owner is other else MARK_OWN}",
            created_by=padm,
            revoked_by=padm,
            revoked_at=timezone.now(),
        )
    from publicquality.follow import issue_follow_token
    from publicquality.models import Commitment, FollowLink

    for side in (own, other):
        side.extra["commitment"] = Commitment.objects.create(
            organisation=side.org, channel="chat", answer_delay_seconds=180
        )
        issue_follow_token(side.interaction)
        side.extra["follow_link"] = FollowLink.objects.get(interaction=side.interaction)
    from surveys.models import SurveySettings

    for side in (own, other):
        side.extra["survey_settings"] = SurveySettings.objects.create(queue=side.queue)
    from webhooks.models import Delivery, Subscription

    for side, mark in ((own, MARK_OWN), (other, MARK_OTHER)):
        # A documentation address (TEST-NET-1): the test button is refused at once.
        side.extra["webhook"] = Subscription.objects.create(
            organisation=side.org,
            name=f"Logiciel métier {mark}",
            url="https://192.0.2.10/hook",
            events=["interaction.closed"],
        )
        side.extra["webhook_delivery"] = Delivery.objects.create(
            subscription=side.extra["webhook"],
            event="interaction.closed",
            body=f'{{"mark": "{mark}"}}',
            status="delivered",
            next_attempt_at=timezone.now(),
            created_at=timezone.now(),
        )
    from django.core.cache import cache

    from sso.models import ExternalIdentity, IdentityProvider

    for side in (own, other):
        low = side.org.slug
        issuer = f"https://idp.{low}.example.invalid"
        side.extra["identity_provider"] = idp = IdentityProvider.objects.create(
            organisation=side.org,
            name=f"ProConnect {side.org.name}",
            discovery_url=f"{issuer}/.well-known/openid-configuration",
            client_id=f"client-{low}",
            client_secret="matrice",
        )
        cache.set(  # no network: the discovery document as if fetched
            f"sso:discovery:{idp.discovery_url}",
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
            },
            3600,
        )
        side.extra["external_identity"] = ExternalIdentity.objects.create(
            provider=idp, user=side.agent.user, sub=f"sub-{low}"
        )
    devices["supervisor"] = own.device
    devices["org_admin"] = TOTPDevice.objects.get(user=own.org_admin)
    users = {
        "anonymous": None,
        "agent": own.agent.user,
        "supervisor": own.supervisor,
        "lone_supervisor": lone,
        "org_admin": own.org_admin,
        "platform_admin": padm,
        "dpo": dpo,
    }
    return World(own, other, lone, padm, users, devices)


def session_cookies(world: World) -> dict[str, str | None]:
    """A logged-in session (second factor passed where a device exists) per user role."""
    cookies: dict[str, str | None] = {}
    for role, user in world.users.items():
        if user is None:
            cookies[role] = None
            continue
        client = Client()
        client.force_login(user)
        device = world.devices.get(role)
        if device is not None:
            session = client.session
            session["otp_device_id"] = device.persistent_id
            session.save()
        cookies[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return cookies


def service_credentials(world: World) -> dict[str, dict[str, str]]:
    """Request headers of A's read and write service tokens (apitokens)."""
    from apitokens.actions import do_create_service_token

    headers = {}
    for role, scope in (("service_read", "read"), ("service_write", "write")):
        _token, raw = do_create_service_token(
            world.own.org_admin,
            name=f"matrice {scope}",
            organisation_id=world.own.org.pk,
            scope=scope,
        )
        headers[role] = {"Authorization": f"Bearer {raw}"}
    return headers


# --------------------------------------------------------------------------- parameters, bodies

_API_PK = {
    "contact": "contact",
    "interaction": "interaction",
    "queue": "queue",
    "skill": "skill",
    "agent": "agent",
    "team": "team",
    "offer": "offer",
    "routing-decision": "decision",
}
_KWARG_ROW = {
    "interaction_id": "interaction",
    "message_id": "message",
    "offer_id": "offer",
    "contact_id": "contact",
    "identity_id": "identity",
    "agent_id": "agent",
    "queue_id": "queue",
    "flow_id": "flow",
    "version_id": "version",
}
# The admin's object of each model in the world (models without one: a row made on the fly).
_ADMIN_ROW: dict[str, Callable[[Side], Any]] = {
    "auth.user": lambda s: s.agent.user,
    "auth.group": lambda s: Group.objects.get(name="agent"),
    "otp_totp.totpdevice": lambda s: s.device,
    "contacts.contact": lambda s: s.contact,
    "contacts.case": lambda s: s.case,
    "interactions.interaction": lambda s: s.interaction,
    "configuration.skill": lambda s: s.skill,
    "configuration.queue": lambda s: s.queue,
    "agents.agentprofile": lambda s: s.agent,
    "configuration.team": lambda s: s.team,
    "channels_inbound.endpoint": lambda s: s.endpoint,
    "channels_chat.chatwidget": lambda s: s.widget,
    "flows.flow": lambda s: s.flow,
    "flows.flowversion": lambda s: s.version,
    "console.wrapupcode": lambda s: s.wrapup,
    "console.cannedresponse": lambda s: s.canned,
    "organisations.organisation": lambda s: s.org,
    "organisations.membership": lambda s: s.agent.user.membership,
    "organisations.sharingagreement": lambda s: s.extra.get("agreement"),
    "apitokens.servicetoken": lambda s: s.extra.get("service_token"),
    "publicquality.commitment": lambda s: s.extra.get("commitment"),
    "publicquality.followlink": lambda s: s.extra.get("follow_link"),
    "surveys.surveysettings": lambda s: s.extra.get("survey_settings"),
    "webhooks.subscription": lambda s: s.extra.get("webhook"),
    "webhooks.delivery": lambda s: s.extra.get("webhook_delivery"),
    "sso.identityprovider": lambda s: s.extra.get("identity_provider"),
    "sso.externalidentity": lambda s: s.extra.get("external_identity"),
}


def _admin_label(route: Route) -> str | None:
    parts = route.pattern.split("/")
    return f"{parts[1]}.{parts[2]}" if len(parts) > 3 and parts[0] == "admin" else None


def fill(route: Route, side: Side) -> str | None:
    """The URL of this route with ``side``'s rows, or None when the world has no such row."""
    values: dict[str, Any] = {}
    for kwarg in route.kwargs:
        if kwarg == "pk" and route.key.startswith("api:"):
            base = max((b for b in _API_PK if route.key[4:].startswith(f"{b}-")), key=len)
            values[kwarg] = getattr(side, _API_PK[base]).pk
        elif kwarg == "pk" and route.key.startswith("admin:otp_totp"):
            values[kwarg] = side.device.pk
        elif kwarg in _KWARG_ROW:
            values[kwarg] = getattr(side, _KWARG_ROW[kwarg]).pk
        elif kwarg == "object_id":
            label = _admin_label(route)
            maker = _ADMIN_ROW.get(label or "")
            row = maker(side) if maker is not None else None
            if row is None:
                return None
            values[kwarg] = row.pk
        elif kwarg == "index":  # the first attachment of a message
            values[kwarg] = 0
        elif kwarg == "id":  # the admin's password page of a user
            values[kwarg] = side.agent.user.pk
        elif kwarg == "token":
            values[kwarg] = "matrice-jeton-inconnu"
        elif kwarg == "org_slug":
            values[kwarg] = side.org.slug
        elif kwarg in ("key", "widget_key"):
            values[kwarg] = side.widget.key
        elif kwarg == "app_label":
            values[kwarg] = "contacts"
        elif kwarg == "content_type_id":
            from django.contrib.contenttypes.models import ContentType

            values[kwarg] = ContentType.objects.get_for_model(side.interaction).pk
            values["object_id"] = side.interaction.pk
        elif kwarg == "url":
            return "/admin/matrix-nowhere/"
        else:
            raise AssertionError(f"{route.key}: no row of the world for URL parameter {kwarg!r}")
    if route.name is not None:
        return reverse(route.name, kwargs=values)
    url = "/" + route.pattern
    for kwarg, value in values.items():
        url = re.sub(rf"<(?:\w+:)?{kwarg}>", str(value), url)
    return url


# Bodies of unsafe requests (harmless but valid-looking), by route key and method: a function
# of the side whose rows the URL names (and of the world, for the other side's rows).
Body = Callable[["Side", "World"], Any]


@dataclass(frozen=True)
class Json:
    data: dict[str, Any]


@dataclass(frozen=True)
class Form:
    """A form-encoded body (as providers post their webhooks)."""

    data: str


_TWILIO_FORM: Body = lambda s, w: Form(  # noqa: E731
    "From=%2B33612345678&To=%2B33100000000&Body=Bonjour&MessageSid=SM1&CallSid=CA1"
    "&MessageStatus=delivered&CallStatus=completed"
)


BODIES: dict[tuple[str, str], Body] = {
    **{(name, "POST"): _TWILIO_FORM for name in MATRIX if name.startswith("twilio-")},
    ("api:contact-list", "POST"): lambda s, w: {
        "display_name": "Nouveau",
        "preferred_language": "fr",
    },
    ("api:contact-detail", "PUT"): lambda s, w: {"display_name": "Corrigé", "notes": "matrice"},
    ("api:contact-detail", "PATCH"): lambda s, w: {"display_name": "Corrigé"},
    ("api:contact-identities", "POST"): lambda s, w: {"kind": "phone", "value": "+33699999999"},
    ("api:contact-merge", "POST"): lambda s, w: {"source": s.contact2.pk},
    ("api:interaction-list", "POST"): lambda s, w: {
        "channel": "email",
        "queue": s.queue.pk,
        "subject": "Matrice",
    },
    ("api:interaction-transition", "POST"): lambda s, w: {"to": "wrap_up"},
    ("api:queue-list", "POST"): lambda s, w: {
        "code": "matrice",
        "name": "Matrice",
        "team": s.team.pk,
    },
    ("api:queue-detail", "PUT"): lambda s, w: {"code": s.queue.code, "name": "Renommée"},
    ("api:queue-detail", "PATCH"): lambda s, w: {"name": "Renommée"},
    ("api:skill-list", "POST"): lambda s, w: {"code": "matrice", "name": "Matrice"},
    ("api:skill-detail", "PUT"): lambda s, w: {"code": s.skill.code, "name": "Renommée"},
    ("api:skill-detail", "PATCH"): lambda s, w: {"name": "Renommée"},
    ("api:agent-detail", "PUT"): lambda s, w: {"team": s.team.pk, "languages": ["fr", "en"]},
    ("api:agent-detail", "PATCH"): lambda s, w: {"languages": ["fr", "en"]},
    ("api:agent-set-skills", "PUT"): lambda s, w: {"skills": [{"skill": "accueil", "level": 3}]},
    ("api:team-detail", "PUT"): lambda s, w: {
        "name": "Renommée",
        "supervisors": [s.supervisor.pk],
    },
    ("api:team-detail", "PATCH"): lambda s, w: {"name": "Renommée"},
    ("api:presence-me", "PATCH"): lambda s, w: {"state": "available"},
    ("console:state", "POST"): lambda s, w: {"state": "available"},
    ("console:channels", "POST"): lambda s, w: {"channels": ["chat"]},
    ("console:reply", "POST"): lambda s, w: {"text": "Bonjour"},
    ("console:note", "POST"): lambda s, w: {"text": "Note"},
    ("console:wrap-up", "POST"): lambda s, w: {"code": s.wrapup.code},
    ("console:transfer", "POST"): lambda s, w: {"queue": s.queue.pk},
    ("console:citizen-edit", "POST"): lambda s, w: {"display_name": "Corrigé"},
    ("console:identity-add", "POST"): lambda s, w: {"value": "+33688888888"},
    ("console:citizen-merge", "POST"): lambda s, w: {"value": "+33677777777"},
    ("supervision:agent-state", "POST"): lambda s, w: {"state": "paused"},
    ("supervision:interaction-reassign", "POST"): lambda s, w: {"agent": s.agent2.pk},
    ("supervision:queue-settings", "POST"): lambda s, w: {"name": "Renommée"},
    ("supervision:flow-save", "POST"): lambda s, w: Json({"graph": {}, "note": "matrice"}),
    ("supervision:flow-validate", "POST"): lambda s, w: Json({"graph": {}}),
    ("supervision:flow-test", "POST"): lambda s, w: Json({"graph": {}, "inputs": []}),
    ("supervision:flow-bindings", "POST"): lambda s, w: {
        "endpoint": s.endpoint.pk,
        "action": "attach",
    },
    **{(key, "POST"): lambda s, w: {"post": "yes"} for key in MATRIX if key.endswith("_delete")},
    ("admin:contacts_contact_change", "POST"): lambda s, w: {"display_name": "Corrigé"},
    ("admin:configuration_queue_change", "POST"): lambda s, w: {"name": "Renommée"},
    ("admin:configuration_team_change", "POST"): lambda s, w: {"name": "Renommée"},
    ("admin:flows_flow_change", "POST"): lambda s, w: {"name": "Renommé"},
}
# Routes whose "other" case is not a row in the URL but a body naming the other side's rows
# (creating in one's own organisation with another organisation's queue or team).
OTHER_IN_BODY = {("api:interaction-list", "POST"), ("api:queue-list", "POST")}


# --------------------------------------------------------------------------- running cases


def _registered_tables() -> dict[str, str]:
    """db table -> model label, for every model of the authorization registry."""
    from organisations.authz import ORGANISATION_PATH

    return {apps.get_model(label)._meta.db_table: label for label in ORGANISATION_PATH}


def b_digest(world: World, labels: set[str] | None = None) -> dict[str, str]:
    """Per registered model (or those in ``labels``): every row of organisation B, as a count
    and a hash of all their fields, in one query."""
    from organisations.authz import ORGANISATION_PATH

    org_id = world.other.org.pk
    selects, params, order = [], [], []
    for label, path in sorted(ORGANISATION_PATH.items()):
        if labels is not None and label not in labels:
            continue
        model = apps.get_model(label)
        sub, sub_params = (
            model._base_manager.filter(**{path: org_id}).values("pk").query.sql_with_params()
        )
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(model._meta.pk.column)
        selects.append(
            f"(SELECT count(*) || ':' || "
            f"md5(coalesce(string_agg(t::text, '|' ORDER BY t.{pk}::text), '')) "
            f"FROM {table} t WHERE t.{pk} IN ({sub}))"
        )
        params.extend(sub_params)
        order.append(label)
    if not selects:
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT ARRAY[" + ", ".join(selects) + "]", params)
        return dict(zip(order, cursor.fetchone()[0], strict=True))


def writes_so_far() -> dict[str, int]:
    """Rows inserted, updated or deleted per table in this transaction (PostgreSQL's counters:
    a request that wrote to no registered table cannot have changed B's rows)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables"
        )
        return dict(cursor.fetchall())


def b_changes(world: World, before: dict[str, str], writes: dict[str, int]) -> list[str]:
    """The registered models whose B rows differ from ``before``, looking only at the tables
    written since ``writes`` was taken."""
    tables = _registered_tables()
    now = writes_so_far()
    touched = {tables[t] for t, n in now.items() if t in tables and n != writes.get(t, 0)}
    if not touched:
        return []
    after = b_digest(world, touched)
    return sorted(label for label, text in after.items() if before[label] != text)


def outcome(response: Any) -> Expect:
    if response.status_code in (301, 302, 303):
        path = urlsplit(response["Location"]).path
        if path in (reverse("login"), reverse("admin:login")):
            return LOGIN
        if path.startswith("/accounts/otp/") and not response.wsgi_request.path.startswith(
            "/accounts/"
        ):
            return OTP
        if path == reverse("admin:index"):
            return ADMIN_INDEX
    return response.status_code


def matches(got: Expect, expected: Expect) -> bool:
    if isinstance(expected, frozenset):
        return got in expected
    return bool(got == expected)


def describe(expected: Expect) -> str:
    if isinstance(expected, frozenset):
        return " or ".join(sorted(str(e) for e in expected))
    return str(expected)


@dataclass
class Case:
    key: str
    method: str
    role: str
    org: str  # own | other | - (no row)
    url: str
    body: Any
    expected: Expect


def cases(world: World, interface: str, roles: list[str]) -> Iterator[Case]:
    routes = url_routes()
    for key, methods in MATRIX.items():
        if interface_of(key) != interface or key not in routes:
            continue
        route = routes[key]
        for method, by_role in methods.items():
            for role in roles:
                expected = by_role[role]
                has_row = bool(route.kwargs) or (key, method) in OTHER_IN_BODY
                for org in ("own", "other") if has_row else ("-",):
                    side = world.other if org == "other" else world.own
                    url = fill(route, side)
                    if url is None:
                        continue
                    if (key, method) in OTHER_IN_BODY:
                        url = fill(route, world.own)
                    make_body = BODIES.get((key, method))
                    body = make_body(side, world) if make_body else {}
                    want = (
                        expected.get(org, expected.get("own"))
                        if isinstance(expected, dict)
                        else expected
                    )
                    assert url is not None
                    yield Case(key, method, role, org, url, body, want)


def run_http(world: World, interface: str, *, api_client: bool = False) -> list[str]:
    """Run every case of an interface; return the mismatches, one line each."""
    from rest_framework.test import APIClient

    cookies = session_cookies(world)
    service = service_credentials(world) if api_client else {}
    roles = [r for r in ROLES if r in cookies or r in service]
    before = b_digest(world)
    problems: list[str] = []
    ran = 0
    for case in cases(world, interface, roles):
        client: Any = (
            APIClient(raise_request_exception=False)
            if api_client
            else Client(raise_request_exception=False)
        )
        if cookies.get(case.role):
            client.cookies[settings.SESSION_COOKIE_NAME] = cookies[case.role]
        headers = dict(service.get(case.role, {}))
        if interface == "console" and case.method == "POST":
            headers["Accept"] = "application/json"  # as the console's script asks
        label = f"{case.method} {case.url} [{case.key}] as {case.role} ({case.org} organisation)"
        changed: list[str] = []
        watch = case.method != "GET" and case.role != "platform_admin"
        writes = writes_so_far() if watch else {}
        with transaction.atomic():
            request = getattr(client, case.method.lower())
            if case.method == "GET":
                response = request(case.url, headers=headers)
            elif isinstance(case.body, Form):
                response = request(
                    case.url,
                    case.body.data,
                    content_type="application/x-www-form-urlencoded",
                    headers=headers,
                )
            elif isinstance(case.body, Json):
                response = request(
                    case.url, case.body.data, content_type="application/json", headers=headers
                )
            elif api_client:
                response = request(case.url, case.body, format="json", headers=headers)
            else:
                response = request(case.url, case.body, headers=headers)
            if watch:
                try:
                    changed = b_changes(world, before, writes)
                except Exception as exc:  # a broken transaction: reported, then rolled back
                    changed = [f"(could not compare: {exc})"]
            transaction.set_rollback(True)
        ran += 1
        got = outcome(response)
        if not matches(got, case.expected):
            problems.append(f"{label}: expected {describe(case.expected)}, got {got}")
        if changed:
            problems.append(f"{label}: CHANGED ORGANISATION B's rows: {', '.join(changed)}")
        if got == 200 and case.role != "platform_admin":
            text = response.content.decode(errors="replace")
            if MARK_OTHER in text:
                problems.append(f"{label}: LEAKS organisation B's data ({MARK_OTHER})")
            if case.role == "lone_supervisor" and MARK_OWN in text:
                problems.append(f"{label}: a supervisor of no team sees A's data ({MARK_OWN})")
    assert ran, f"no case ran for {interface}"
    assert b_digest(world) == before, "organisation B's rows changed over the run"
    return problems


def report(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} authorization mismatches:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- one test per interface


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


def test_rest_api_matrix(world: World) -> None:
    report(run_http(world, "rest", api_client=True))


def test_admin_matrix(world: World) -> None:
    report(run_http(world, "admin"))


def test_console_matrix(world: World) -> None:
    report(run_http(world, "console"))


def test_supervision_and_flow_editor_matrix(world: World) -> None:
    report(run_http(world, "supervision"))


def test_site_webhooks_and_chat_matrix(world: World) -> None:
    report(run_http(world, "site"))


async def _ws_case(path: str, cookie: str | None) -> tuple[str, str]:
    from channels.testing import WebsocketCommunicator

    from contactcentre.asgi import application

    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _code = await socket.connect(timeout=5)
    if not connected:
        return REJECT, ""
    try:
        first = str(await socket.receive_output(timeout=2))
    except (TimeoutError, AssertionError):
        return ACCEPT, ""  # nothing said first (the communicator has stopped the consumer)
    await socket.disconnect()
    return ACCEPT, first


@pytest.mark.django_db(transaction=True)
async def test_websocket_matrix() -> None:
    world = await sync_to_async(build_world)()
    cookies = await sync_to_async(session_cookies)(world)
    routes = ws_routes()
    problems = []
    for key, route in routes.items():
        by_role = MATRIX.get(key, {}).get("CONNECT")
        assert by_role is not None, f"{key} has no CONNECT row"
        for role in [r for r in ROLES if r in cookies]:
            for org in ("own", "other") if route.kwargs else ("-",):
                side = world.other if org == "other" else world.own
                path = fill(route, side)
                assert path is not None
                expected = by_role[role]
                want = (
                    expected.get(org, expected.get("own"))
                    if isinstance(expected, dict)
                    else expected
                )
                got, first = await _ws_case(path, cookies[role])
                label = f"WebSocket {path} as {role} ({org} organisation)"
                if not matches(got, want):
                    problems.append(f"{label}: expected {describe(want)}, got {got}")
                if role != "platform_admin" and route.kwargs == () and MARK_OTHER in first:
                    problems.append(f"{label}: LEAKS organisation B's data ({MARK_OTHER})")
                if role == "lone_supervisor" and MARK_OWN in first:
                    problems.append(f"{label}: a supervisor of no team sees A's data")
    report(problems)
