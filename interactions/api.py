"""REST API for interactions: the unified queue, one interaction with its messages, changes."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from configuration.models import Queue
from contacts.models import Contact
from kernel.audit import AccessAction, log_access
from organisations import authz
from organisations.api_scope import (
    ScopedViewSetMixin,
    int_param,
    own_rows,
    request_user,
)
from organisations.models import OrganisationRequired

from .actions import do_create_interaction, do_set_interaction_status
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


def validate_skill_levels(value: dict[str, Any], organisation_id: int | None = None) -> None:
    """``{"skill code": minimum level}``; with ``organisation_id``, codes of that organisation
    only (each organisation has its own skills, the same code elsewhere is another skill)."""
    from configuration.models import Skill

    if not isinstance(value, dict):
        raise serializers.ValidationError('Expected {"skill code": minimum level}.')
    for code, level in value.items():
        if not isinstance(level, int) or not 1 <= level <= 5:
            raise serializers.ValidationError(f"Level of {code!r} must be an integer from 1 to 5.")
    skills = Skill.objects.filter(code__in=value)
    if organisation_id is not None:
        skills = skills.filter(organisation_id=organisation_id)
    unknown = set(value) - set(skills.values_list("code", flat=True))
    if unknown:
        raise serializers.ValidationError(f"Unknown skills: {', '.join(sorted(unknown))}.")


class InteractionSerializer(serializers.ModelSerializer):
    # Querysets filled per request (get_fields): the caller's own organisation's rows only.
    contact = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.none(), allow_null=True, required=False
    )
    queue = serializers.PrimaryKeyRelatedField(
        queryset=Queue.objects.none(), allow_null=True, required=False
    )
    required_skills = serializers.JSONField(required=False, default=dict)

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

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        user = request_user(self)
        fields["contact"].queryset = own_rows(  # type: ignore[attr-defined]
            user, Contact.objects.filter(merged_into=None)
        )
        fields["queue"].queryset = own_rows(  # type: ignore[attr-defined]
            user, Queue.objects.filter(active=True)
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        queue, contact = attrs.get("queue"), attrs.get("contact")
        orgs = {row.organisation_id for row in (queue, contact) if row is not None}
        if len(orgs) > 1:
            raise serializers.ValidationError(
                {"contact": _("This citizen and this queue belong to two organisations.")}
            )
        try:
            org_id = authz.organisation_for_new(request_user(self), next(iter(orgs), None))
        except (authz.OutOfScope, OrganisationRequired) as exc:
            raise serializers.ValidationError({"queue": str(exc)}) from exc
        attrs["organisation_id"] = org_id
        validate_skill_levels(attrs.get("required_skills") or {}, org_id)
        return attrs


class TransitionSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=Status.choices)
    reason = serializers.CharField(max_length=64, required=False, default="")


class InteractionViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = InteractionSerializer

    def get_queryset(self) -> QuerySet[Interaction]:
        queryset = self.scoped(Interaction.objects.order_by("-id"))
        params = self.request.query_params
        if params.get("status"):
            queryset = queryset.filter(status__in=params["status"].split(","))
        if params.get("channel"):
            queryset = queryset.filter(channel=params["channel"])
        contact_id = int_param(self.request, "contact")
        if contact_id is not None:
            queryset = queryset.filter(contact_id=contact_id)
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
            organisation_id=data["organisation_id"],
        )
        interaction.refresh_from_db()
        return Response(self.get_serializer(interaction).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        interaction = self.get_object()
        log_access(request.user, AccessAction.VIEW_THREAD, interaction, via="api")
        messages = authz.visible(request.user, interaction.messages.all())
        return Response(MessageSerializer(messages, many=True).data)

    @action(detail=True, methods=["post"], serializer_class=TransitionSerializer)
    def transition(self, request: Request, pk: str | None = None) -> Response:
        """Change the status (refused with 409 when the life cycle does not allow it)."""
        if not request.user.has_perm("interactions.change_interaction"):
            self.permission_denied(request)
        interaction = self.get_object()
        self.check_change(interaction)
        serializer = TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        do_set_interaction_status(
            actor=request.user,
            interaction=interaction,
            to=serializer.validated_data["to"],
            reason=serializer.validated_data["reason"],
        )
        return Response(InteractionSerializer(interaction, context={"request": request}).data)


__all__ = ["Channel", "InteractionViewSet"]
