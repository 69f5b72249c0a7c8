"""HTTP side of the web chat: the widget's configuration (read cross-origin by the embedded
script), the demo page that embeds a widget, and the page confirming a transcript's address."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from interactions.channels import Channel

from . import actions, ratelimit
from .consumers import origin_allowed
from .errors import ChatError
from .models import ChatSession, ChatWidget
from .selectors import widget_for_key
from .strings import widget_language, widget_strings
from .transcript import address_key, read_confirmation_token


def _cors(response: HttpResponse, origin: str) -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
    patch_vary_headers(response, ["Origin"])
    return response


def _refused(error: ChatError) -> JsonResponse:
    """The script's answer to a refusal: ``{"error": code}`` with the status of its kind."""
    return JsonResponse({"error": error.code}, status=error.http_status)


@require_GET
def widget_config(request: HttpRequest, key: str) -> HttpResponse:
    """Title, topics and interface text in the visitor's language (French by default)."""
    widget = widget_for_key(key)
    if widget is None:
        return _refused(ChatError("unknown_widget"))
    origin = request.headers.get("Origin", "")
    if origin and not origin_allowed(tuple(widget.origins()), origin, request.get_host()):
        return _cors(_refused(ChatError("origin_not_allowed")), "")
    language = widget_language(request.GET.get("lang"))
    response = JsonResponse(
        {
            "key": widget.key,
            "title": widget.display_title,
            "language": language,
            "socket_path": f"/ws/chat/{widget.key}/",
            "topics": [
                {"id": topic.pk, "label": topic.label_in(language)} for topic in widget.topics.all()
            ],
            "transcripts": widget.transcripts_enabled,
            "max_length": settings.CHAT_MAX_MESSAGE_CHARS,
            "strings": widget_strings(language),
        }
    )
    response["Cache-Control"] = "public, max-age=60"
    return _cors(response, origin)


def widget_script_url(request: HttpRequest | None) -> str:
    """The stable (unhashed) address of the widget script, for the embedding snippet: on this
    request's host, else on ``PUBLIC_BASE_URL``."""
    static_url = settings.STATIC_URL
    if static_url.startswith(("http://", "https://")):
        return f"{static_url.rstrip('/')}/chat/widget.js"
    path = f"/{static_url.strip('/')}/chat/widget.js"
    if request is not None:
        return request.build_absolute_uri(path)
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}"


@never_cache
@require_GET
def demo(request: HttpRequest) -> HttpResponse:
    """A test page embedding a widget as a partner site would (``?widget=<key>&lang=en``).
    Only in DEBUG or with ``CHAT_DEMO_PAGE`` on (``dev.py run`` sets both)."""
    if not (settings.DEBUG or settings.CHAT_DEMO_PAGE):
        raise Http404
    key = request.GET.get("widget", "")
    widgets = ChatWidget.objects.select_related("endpoint").filter(
        endpoint__channel=Channel.CHAT, endpoint__active=True
    )
    widget = widgets.filter(endpoint__address=key).first() if key else widgets.first()
    language = widget_language(request.GET.get("lang"))
    context = {
        "widget": widget,
        "language": language,
        "script_url": widget_script_url(request),
    }
    return render(request, "chat/demo.html", context)


def _confirm_page(
    request: HttpRequest, session: ChatSession | None, context: dict[str, object], status: int
) -> HttpResponse:
    language = session.language if session is not None else widget_language(None)
    with translation.override(language):
        return render(
            request,
            "chat/transcript_confirm.html",
            {"title": session.widget.display_title if session else "", **context},
            status=status,
        )


@never_cache
@require_http_methods(["GET", "POST"])
async def transcript_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link of the confirmation e-mail: GET shows what will be sent where (mail scanners
    that follow links send nothing), the button (POST) sends the conversation."""
    try:
        session_id, email = read_confirmation_token(token)
    except signing.SignatureExpired:
        return await sync_to_async(_confirm_page)(request, None, {"state": "expired"}, 410)
    except signing.BadSignature:
        return await sync_to_async(_confirm_page)(request, None, {"state": "invalid"}, 404)
    session = (
        await ChatSession.objects.select_related("widget__endpoint").filter(pk=session_id).afirst()
    )
    if session is None or not session.widget.transcripts_enabled:
        return await sync_to_async(_confirm_page)(request, None, {"state": "invalid"}, 404)
    context: dict[str, object] = {"email": email, "state": "ask"}
    if request.method == "POST":
        verdict = await ratelimit.take(
            "transcript-sent",
            address_key(email),
            ratelimit.limit_from_settings("CHAT_RATE_LIMIT_TRANSCRIPT_ADDRESS"),
        )
        if not verdict.allowed:
            context["state"] = "limited"
            return await sync_to_async(_confirm_page)(request, session, context, 429)
        sent = await sync_to_async(actions.do_send_confirmed_transcript)(
            session_id=str(session.pk), email=email
        )
        context["state"] = "sent" if sent else "invalid"
    return await sync_to_async(_confirm_page)(request, session, context, 200)
