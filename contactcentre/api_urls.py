"""The versioned REST API: /api/v1/ (OpenAPI schema at /api/v1/schema/, UI at /api/v1/docs/)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from agents.api import AgentViewSet, PresenceViewSet, TeamViewSet
from apitokens.views import TokenView
from contacts.api import ContactViewSet
from interactions.api import InteractionViewSet
from routing.api import OfferViewSet, QueueViewSet, RoutingDecisionViewSet, SkillViewSet
from supervision.api import LiveStatsView, ReportStatsView

router = DefaultRouter()
router.register("contacts", ContactViewSet, basename="contact")
router.register("interactions", InteractionViewSet, basename="interaction")
router.register("queues", QueueViewSet, basename="queue")
router.register("skills", SkillViewSet, basename="skill")
router.register("agents", AgentViewSet, basename="agent")
router.register("teams", TeamViewSet, basename="team")
router.register("offers", OfferViewSet, basename="offer")
router.register("routing-decisions", RoutingDecisionViewSet, basename="routing-decision")
router.register("presence", PresenceViewSet, basename="presence")

urlpatterns = [
    path("", include(router.urls)),
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("stats/live/", LiveStatsView.as_view(), name="stats-live"),
    path("stats/reports/", ReportStatsView.as_view(), name="stats-reports"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
