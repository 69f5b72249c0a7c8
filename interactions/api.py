"""REST API for interactions: the unified queue, one interaction with its messages, changes."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from contacts.models import Contact
from routing.models import Queue

from .actions import do_create_interaction, do_transition_interaction
from .lifecycle import Status
from .models import Channel, Interaction, Message


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "direction",
            "text",
            "html",
            "attachments",
            "provider_id",
            "delivery_status",
            "author",
            "created_at",
        ]
        read_only_fields = fields


def validate_skill_levels(value: dict[str, Any]) -> None:
    from routing.models import Skill

    if not isinstance(value, dict):
        raise serializers.ValidationError('Expected {"skill code": minimum level}.')
    for code, level in value.items():
        if not isinstance(level, int) or not 1 <= level <= 5:
            raise serializers.ValidationError(f"Level of {code!r} must be an integer from 1 to 5.")
    unknown = set(value) - set(Skill.objects.filter(code__in=value).values_list("code", flat=True))
    if unknown:
        raise serializers.ValidationError(f"Unknown skills: {', '.join(sorted(unknown))}.")


class InteractionSerializer(serializers.ModelSerializer):
    contact = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.filter(merged_into=None), allow_null=True, required=False
    )
    queue = serializers.PrimaryKeyRelatedField(
        queryset=Queue.objects.filter(active=True), allow_null=True, required=False
    )
    required_skills = serializers.JSONField(
        required=False, validators=[validate_skill_levels], default=dict
    )

    class Meta:
        model = Interaction
        fields = [
            "id",
            "channel",
            "direction",
            "contact",
            "case",
            "queue",
            "subject",
            "priority",
            "required_skills",
            "language",
            "status",
            "sla_due_at",
            "assigned_agent",
            "created_at",
            "queued_at",
            "offered_at",
            "assigned_at",
            "wrap_up_at",
            "closed_at",
            "abandoned_at",
        ]
        read_only_fields = [
            "status",
            "sla_due_at",
            "assigned_agent",
            "case",
            "created_at",
            "queued_at",
            "offered_at",
            "assigned_at",
            "wrap_up_at",
            "closed_at",
            "abandoned_at",
        ]


class TransitionSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=Status.choices)
    reason = serializers.CharField(max_length=64, required=False, default="")


class InteractionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = InteractionSerializer

    def get_queryset(self) -> QuerySet[Interaction]:
        queryset = Interaction.objects.order_by("-id")
        params = self.request.query_params
        if params.get("status"):
            queryset = queryset.filter(status__in=params["status"].split(","))
        if params.get("channel"):
            queryset = queryset.filter(channel=params["channel"])
        if params.get("contact"):
            queryset = queryset.filter(contact_id=params["contact"])
        return queryset

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        interaction = do_create_interaction(
            channel=data["channel"],
            direction=data.get("direction", "inbound"),
            contact=data.get("contact"),
            queue=data.get("queue"),
            subject=data.get("subject", ""),
            priority=data.get("priority"),
            required_skills=data.get("required_skills"),
            language=data.get("language"),
        )
        interaction.refresh_from_db()
        return Response(self.get_serializer(interaction).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        interaction = self.get_object()
        return Response(MessageSerializer(interaction.messages.all(), many=True).data)

    @action(detail=True, methods=["post"], serializer_class=TransitionSerializer)
    def transition(self, request: Request, pk: str | None = None) -> Response:
        """Change the status (refused with 409 when the life cycle does not allow it)."""
        if not request.user.has_perm("interactions.change_interaction"):
            self.permission_denied(request)
        interaction = self.get_object()
        serializer = TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        do_transition_interaction(
            interaction=interaction,
            to=serializer.validated_data["to"],
            reason=serializer.validated_data["reason"],
            actor=request.user,  # type: ignore[arg-type]
        )
        return Response(InteractionSerializer(interaction).data)


__all__ = ["Channel", "InteractionViewSet"]
