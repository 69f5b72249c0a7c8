"""WebSocket routes (named ws_urls so they do not collide with the ``routing`` app)."""

from django.urls import path

from console.consumers import AgentConsoleConsumer
from supervision.consumers import WallboardConsumer

websocket_urlpatterns = [
    path("ws/console/", AgentConsoleConsumer.as_asgi()),
    path("ws/supervision/wallboard/", WallboardConsumer.as_asgi()),
]
