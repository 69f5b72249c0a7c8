"""REST API for skills and queues (supervisors write, agents read)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AgentProfile
from configuration.models import EscalationStep, Queue, QueueSkill, Skill, Team
from organisations import authz
from organisations.api_scope import ScopedViewSetMixin, int_param, own_rows, request_user

from .config_actions import (
    QUEUE_FIELDS,
    SKILL_FIELDS,
    do_create_queue,
    do_create_skill,
    do_update_queue,
    do_update_skill,
)
from .models import Offer, RoutingDecision
from .offers import do_accept_offer, do_decline_offer


class SkillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Skill
        fields = ["id", "code", "name", "description"]


def _queue_organisation(serializer: serializers.BaseSerializer) -> int | None:
    """The organisation skill codes resolve in: the queue's when it exists, else the caller's."""
    instance = serializer.root.instance
    if isinstance(instance, Queue):
        return instance.organisation_id
    return authz.principal_for(request_user(serializer)).organisation_id


class QueueSkillSerializer(serializers.ModelSerializer):
    # Codes resolve within one organisation: the same code elsewhere is another skill.
    skill = serializers.SlugRelatedField(slug_field="code", queryset=Skill.objects.none())

    class Meta:
        model = QueueSkill
        fields = ["skill", "min_level"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        skills = own_rows(request_user(self), Skill.objects.all())
        org_id = _queue_organisation(self)
        if org_id is not None:
            skills = skills.filter(organisation_id=org_id)
        fields["skill"].queryset = skills  # type: ignore[attr-defined]
        return fields


class EscalationStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = EscalationStep
        fields = ["after_seconds", "min_level_cap", "any_agent_of_team", "overflow_to"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["overflow_to"].queryset = own_rows(  # type: ignore[attr-defined]
            request_user(self), Queue.objects.all()
        )
        return fields


class QueueSerializer(serializers.ModelSerializer):
    skills = QueueSkillSerializer(source="queue_skills", many=True, required=False)
    escalation_steps = EscalationStepSerializer(many=True, required=False)

    class Meta:
        model = Queue
        fields = [
            "id",
            "code",
            "name",
            "priority",
            "sla_target_seconds",
            "sla_target_percent",
            "language",
            "team",
            "overflow_queue",
            "active",
            "skills",
            "escalation_steps",
        ]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        user = request_user(self)
        fields["team"].queryset = authz.editable(user, Team)  # type: ignore[attr-defined]
        fields["overflow_queue"].queryset = own_rows(  # type: ignore[attr-defined]
            user, Queue.objects.all()
        )
        return fields

    def validate_escalation_steps(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        delays = [step["after_seconds"] for step in value]
        if len(delays) != len(set(delays)):
            raise serializers.ValidationError("Two escalation steps have the same delay.")
        return value


class SkillViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    serializer_class = SkillSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Skill]:
        return self.scoped(Skill.objects.order_by("code"))

    def perform_create(self, serializer: Any) -> None:
        data = {k: v for k, v in serializer.validated_data.items() if k in SKILL_FIELDS}
        serializer.instance = do_create_skill(
            actor=self.request.user,
            organisation_id=int_param(self.request, "organisation"),  # platform admins
            **data,
        )

    def perform_update(self, serializer: Any) -> None:
        skill = serializer.instance
        self.check_change(skill)
        data = {k: v for k, v in serializer.validated_data.items() if k in SKILL_FIELDS}
        serializer.instance = do_update_skill(actor=self.request.user, skill=skill, changes=data)


class QueueViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    serializer_class = QueueSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Queue]:
        return self.scoped(
            Queue.objects.prefetch_related("queue_skills__skill", "escalation_steps").order_by(
                "code"
            )
        )

    @staticmethod
    def _split(data: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        fields = {k: v for k, v in data.items() if k in QUEUE_FIELDS}
        return fields, data.get("queue_skills"), data.get("escalation_steps")

    def perform_create(self, serializer: Any) -> None:
        fields, skills, steps = self._split(serializer.validated_data)
        serializer.instance = do_create_queue(
            actor=self.request.user, fields=fields, skills=skills, steps=steps
        )

    def perform_update(self, serializer: Any) -> None:
        queue = serializer.instance
        self.check_change(queue)
        fields, skills, steps = self._split(serializer.validated_data)
        serializer.instance = do_update_queue(
            actor=self.request.user, queue=queue, changes=fields, skills=skills, steps=steps
        )


# --------------------------------------------------------------------------- offers and decisions


class OfferSerializer(serializers.ModelSerializer):
    class Meta:
        model = Offer
        fields = [
            "id",
            "interaction",
            "agent",
            "channel",
            "status",
            "created_at",
            "expires_at",
            "responded_at",
        ]
        read_only_fields = fields


class OfferViewSet(viewsets.ReadOnlyModelViewSet):
    """Offers: an agent sees and answers their own; supervisors see everyone's."""

    serializer_class = OfferSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self) -> QuerySet[Offer]:
        queryset = authz.visible(self.request.user, Offer.objects.order_by("-id"))
        user = self.request.user
        if not user.has_perm("routing.view_routingdecision"):
            queryset = queryset.filter(agent__user_id=user.pk or 0)
        status_filter = self.request.query_params.get("status")
        if status_filter:
            queryset = queryset.filter(status=status_filter)
        return queryset

    def _answer(self, request: Request, accept: bool) -> Response:
        offer = self.get_object()
        agent = AgentProfile.objects.filter(user_id=request.user.pk or 0).first()
        if agent is None:
            raise PermissionDenied("Only agents answer offers.")
        # refusals answer through kernel.api_errors: another agent's offer 403, an
        # offer already answered or expired 409
        if accept:
            do_accept_offer(offer_id=offer.pk, agent=agent)
        else:
            do_decline_offer(offer_id=offer.pk, agent=agent)
        offer.refresh_from_db()
        return Response(OfferSerializer(offer).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(request, accept=True)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(request, accept=False)


class RoutingDecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RoutingDecision
        fields = ["id", "interaction", "offer", "agent", "action", "rule", "at", "details"]
        read_only_fields = fields


class RoutingDecisionViewSet(viewsets.ReadOnlyModelViewSet):
    """Why each interaction went where it went (supervisors): candidates, scores, rule."""

    serializer_class = RoutingDecisionSerializer

    def get_queryset(self) -> QuerySet[RoutingDecision]:
        queryset = authz.visible(self.request.user, RoutingDecision.objects.order_by("-at", "-id"))
        interaction = int_param(self.request, "interaction")
        if interaction is not None:
            queryset = queryset.filter(interaction_id=interaction)
        return queryset
