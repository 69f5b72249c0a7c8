"""The citizen's survey pages, without login: the e-mailed link's page, the chat window's
answer (posted cross-origin by the widget) and the phone's key presses (provider webhook).

A token is an invitation id signed with its time (``tokens.py``): a made-up or altered one is
"not valid" (404), an old one "expired" (410); a survey answered once keeps its first answer
and the page says so.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from channels_inbound.providers.base import Provider, WebhookError
from channels_inbound.providers.webhooks import markup, provider_webhook
from supervision.models import SatisfactionResponse

from . import voice
from .actions import (
    AlreadyAnswered,
    SurveyError,
    do_answer_survey,
    question,
    score_labels,
    settings_for,
)
from .models import SurveyInvitation
from .tokens import BadSignature, SignatureExpired, read_token

SCORES = (1, 2, 3, 4, 5)


def _invitation(token: str) -> tuple[SurveyInvitation | None, str]:
    """(the invitation, "") or (None, "invalid" | "expired")."""
    try:
        invitation_id = read_token(token)
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    invitation = (
        SurveyInvitation.objects.select_related("interaction__organisation")
        .filter(pk=invitation_id)
        .first()
    )
    return (invitation, "") if invitation is not None else (None, "invalid")


def _score(raw: Any) -> int | None:
    text = str(raw or "").strip()
    return int(text) if text in {str(s) for s in SCORES} else None


STATUS_OF = {"invalid": 404, "expired": 410, "answered": 200, "already": 200, "ask": 200}


@never_cache
@require_http_methods(["GET", "POST"])
def answer(request: HttpRequest, token: str) -> HttpResponse:
    """The page an e-mailed survey link opens: the 1-5 rating and an optional comment."""
    invitation, state = _invitation(token)
    context: dict[str, Any] = {"error": ""}
    language = invitation.language if invitation is not None else translation.get_language()
    with translation.override(language or "fr"):
        context["scores"] = list(zip(SCORES, score_labels(), strict=True))
        if invitation is not None:
            context["organisation"] = invitation.interaction.organisation.name
            context["question"] = question(
                settings_for(invitation.interaction.queue_id), invitation.language
            )
            state = _page_state(request, invitation, context)
        context["state"] = state
        return render(request, "surveys/answer.html", context, status=STATUS_OF[state])


def _page_state(request: HttpRequest, invitation: SurveyInvitation, context: dict[str, Any]) -> str:
    existing = SatisfactionResponse.objects.filter(interaction_id=invitation.interaction_id).first()
    if existing is not None:
        context["response"] = existing
        return "already"
    if request.method != "POST":
        context["selected"] = _score(request.GET.get("score"))
        return "ask"
    score = _score(request.POST.get("score"))
    context["selected"] = score
    context["comment"] = request.POST.get("comment", "")
    if score is None:
        context["error"] = "required"
        return "ask"
    try:
        result = do_answer_survey(
            invitation_id=invitation.pk, score=score, comment=context["comment"]
        )
    except AlreadyAnswered as exc:
        context["response"] = exc.response
        return "already"
    except SurveyError as exc:
        return "expired" if exc.code in ("expired", "not_open") else "invalid"
    context["response"] = result.response
    return "answered"


def _json(data: dict[str, Any], status: int = 200) -> JsonResponse:
    """The widget runs on partner sites: any origin may read the answer (the token is the only
    credential; no cookie is sent or read)."""
    response = JsonResponse(data, status=status)
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_POST
def chat_answer(request: HttpRequest, token: str) -> HttpResponse:
    """The chat window's rating (form-encoded ``score`` and ``comment``): JSON, for any origin."""
    invitation, state = _invitation(token)
    score = _score(request.POST.get("score"))
    try:
        if invitation is None:
            raise SurveyError(state)  # invalid (404) or expired (410)
        if score is None:
            raise SurveyError("bad_score")
        with transaction.atomic():
            do_answer_survey(
                invitation_id=invitation.pk,
                score=score,
                comment=str(request.POST.get("comment", "")),
            )
    except SurveyError as exc:  # its code for the widget, the status of its kind
        return _json({"ok": False, "error": exc.code}, exc.http_status)
    return _json({"ok": True})


def _query_int(request: HttpRequest, name: str) -> int:
    try:
        return int(request.GET.get(name, ""))
    except ValueError:
        raise WebhookError(f"query parameter {name!r} must be a number") from None


@provider_webhook
def voice_survey(request: HttpRequest, provider: Provider) -> HttpResponse:
    """The caller's key at the post-call survey (signed provider webhook)."""
    node = request.GET.get("node", "")
    if not node or "CallSid" not in request.POST:
        raise WebhookError("query parameter 'node' and field 'CallSid' are required")
    instructions = voice.do_continue_voice_survey(
        call_sid=str(request.POST["CallSid"]),
        node_id=node,
        attempt=_query_int(request, "attempt"),
        digits=provider.parse_digits(request.POST),
        provider=provider.name,
    )
    return markup(provider, provider.render_voice(instructions))
