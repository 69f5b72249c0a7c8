"""WebSocket routes (named ws_urls so they do not collide with the ``routing`` app)."""

from django.urls import path

from channels_inbound.chat.consumers import ChatVisitorConsumer
from console.consumers import AgentConsoleConsumer
from supervision.consumers import WallboardConsumer

websocket_urlpatterns = [
    path("ws/console/", AgentConsoleConsumer.as_asgi()),
    path("ws/supervision/wallboard/", WallboardConsumer.as_asgi()),
]

# The citizen chat widget, embedded on other sites: no session, and an origin check against
# each widget's own list instead of ALLOWED_HOSTS (see asgi.py).
CHAT_WS_PREFIX = "/ws/chat/"
chat_websocket_urlpatterns = [
    path("ws/chat/<str:widget_key>/", ChatVisitorConsumer.as_asgi()),
]
