"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Two kinds of WebSocket:

- the agent console (and every other route in ``websocket_urlpatterns``): accepted only from
  this site's own origins (``ALLOWED_HOSTS``) and carrying the Django session, so a console
  socket belongs to a logged-in user;
- the citizen chat widget (``/ws/chat/<widget key>/``), embedded on partner sites (a mairie's
  website): no session, and its consumer checks the ``Origin`` against that widget's own list
  of allowed origins instead. Only paths under ``CHAT_WS_PREFIX`` go there; anything else
  takes the console's stack, so a new route is protected by default.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings")
# Build the Django app first: it sets up apps before the consumers import models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from channels_inbound.asgi import with_fast_webhooks  # noqa: E402
from contactcentre.ws_urls import (  # noqa: E402
    CHAT_WS_PREFIX,
    chat_websocket_urlpatterns,
    websocket_urlpatterns,
)
from kernel.asgi_limits import ConcurrencyLimit, django_work  # noqa: E402
from kernel.logs import RequestIds  # noqa: E402

site_websockets = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
chat_websockets = URLRouter(chat_websocket_urlpatterns)


async def websockets(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if path.startswith(CHAT_WS_PREFIX):
        await chat_websockets(scope, receive, send)
    else:
        await site_websockets(scope, receive, send)


# Provider SMS webhooks take a lean path (same checks and action, without the site's
# middleware); every other HTTP request goes to Django (channels_inbound/asgi.py), at most
# WEB_DJANGO_CONCURRENCY at once with the console sockets' actions (kernel/asgi_limits.py):
# the lean path is not counted.
django_limited = ConcurrencyLimit(
    django_asgi_app,  # type: ignore[arg-type]  # ASGI3 callable
    slots=django_work(),
)
http = with_fast_webhooks(django_limited)

# Outermost: each request and socket gets its request id (X-Request-ID) before anything logs
# (kernel/logs.py).
application = ProtocolTypeRouter({"http": RequestIds(http), "websocket": RequestIds(websockets)})
