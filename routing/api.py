"""REST API for skills and queues (supervisors write, agents read)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AgentProfile

from .actions import OfferNotPending, RoutingError, do_accept_offer, do_decline_offer
from .models import EscalationStep, Offer, Queue, QueueSkill, RoutingDecision, Skill


class SkillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Skill
        fields = ["id", "code", "name", "description"]


class QueueSkillSerializer(serializers.ModelSerializer):
    skill = serializers.SlugRelatedField(slug_field="code", queryset=Skill.objects.all())

    class Meta:
        model = QueueSkill
        fields = ["skill", "min_level"]


class EscalationStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = EscalationStep
        fields = ["after_seconds", "min_level_cap", "any_agent_of_team", "overflow_to"]


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

    def validate_escalation_steps(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        delays = [step["after_seconds"] for step in value]
        if len(delays) != len(set(delays)):
            raise serializers.ValidationError("Two escalation steps have the same delay.")
        return value

    @transaction.atomic
    def create(self, validated_data: dict[str, Any]) -> Queue:
        skills = validated_data.pop("queue_skills", [])
        steps = validated_data.pop("escalation_steps", [])
        queue = Queue.objects.create(**validated_data)
        self._write_children(queue, skills, steps)
        return queue

    @transaction.atomic
    def update(self, instance: Queue, validated_data: dict[str, Any]) -> Queue:
        skills = validated_data.pop("queue_skills", None)
        steps = validated_data.pop("escalation_steps", None)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        instance.save()
        self._write_children(instance, skills, steps)
        return instance

    @staticmethod
    def _write_children(
        queue: Queue, skills: list[dict[str, Any]] | None, steps: list[dict[str, Any]] | None
    ) -> None:
        if skills is not None:
            queue.queue_skills.all().delete()
            QueueSkill.objects.bulk_create(QueueSkill(queue=queue, **item) for item in skills)
        if steps is not None:
            queue.escalation_steps.all().delete()
            EscalationStep.objects.bulk_create(EscalationStep(queue=queue, **s) for s in steps)


class SkillViewSet(viewsets.ModelViewSet):
    queryset = Skill.objects.order_by("code")
    serializer_class = SkillSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class QueueViewSet(viewsets.ModelViewSet):
    serializer_class = QueueSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Queue]:
        return Queue.objects.prefetch_related("queue_skills__skill", "escalation_steps").order_by(
            "code"
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
        queryset = Offer.objects.order_by("-id")
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
        try:
            if accept:
                do_accept_offer(offer_id=offer.pk, agent=agent)
            else:
                do_decline_offer(offer_id=offer.pk, agent=agent)
        except OfferNotPending as exc:
            return Response(
                {"error": "offer_not_pending", "detail": str(exc)}, status=status.HTTP_409_CONFLICT
            )
        except RoutingError as exc:
            raise PermissionDenied(str(exc)) from exc
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
        queryset = RoutingDecision.objects.order_by("-at", "-id")
        interaction = self.request.query_params.get("interaction")
        if interaction:
            queryset = queryset.filter(interaction_id=interaction)
        return queryset
