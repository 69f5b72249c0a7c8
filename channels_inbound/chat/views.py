"""HTTP side of the web chat: the widget's configuration (read cross-origin by the embedded
script) and the demo page that embeds a widget."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .consumers import origin_allowed
from .models import ChatWidget
from .selectors import widget_for_key
from .strings import widget_language, widget_strings


def _cors(response: HttpResponse, origin: str) -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
    patch_vary_headers(response, ["Origin"])
    return response


@require_GET
def widget_config(request: HttpRequest, key: str) -> HttpResponse:
    """Title, topics and interface text in the visitor's language (French by default)."""
    widget = widget_for_key(key)
    if widget is None:
        return JsonResponse({"error": "unknown_widget"}, status=404)
    origin = request.headers.get("Origin", "")
    if origin and not origin_allowed(tuple(widget.origins()), origin, request.get_host()):
        return _cors(JsonResponse({"error": "origin_not_allowed"}, status=403), "")
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
    """A test page embedding a widget as a partner site would (``?widget=<key>&lang=en``)."""
    if not settings.CHAT_DEMO_PAGE:
        raise Http404
    key = request.GET.get("widget", "")
    widgets = ChatWidget.objects.select_related("endpoint").filter(
        endpoint__channel="chat", endpoint__active=True
    )
    widget = widgets.filter(endpoint__address=key).first() if key else widgets.first()
    language = widget_language(request.GET.get("lang"))
    context = {
        "widget": widget,
        "language": language,
        "script_url": widget_script_url(request),
    }
    return render(request, "chat/demo.html", context)
