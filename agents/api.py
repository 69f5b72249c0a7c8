"""REST API for agents and teams. Changing skills needs the supervisor role."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from configuration.models import Skill, Team
from organisations import authz
from organisations.api_scope import ScopedViewSetMixin, request_user

from .actions import PROFILE_FIELDS, do_set_agent_skills, do_update_agent_profile, do_update_team
from .models import (
    AGENT_PAUSE_REASONS,
    AgentPresence,
    AgentProfile,
    AgentSkill,
    AgentState,
    PauseReason,
)
from .presence import do_heartbeat, do_set_agent_state, do_set_channels


class AgentSkillSerializer(serializers.ModelSerializer):
    # Codes resolve within one organisation (the agent's, given in the context as
    # ``organisation_id``): the same code in another organisation is another skill.
    skill = serializers.SlugRelatedField(slug_field="code", queryset=Skill.objects.none())
    level = serializers.IntegerField(min_value=1, max_value=5)

    class Meta:
        model = AgentSkill
        fields = ["skill", "level"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        org_id = self.context.get("organisation_id")
        skill_field = fields["skill"]
        assert isinstance(skill_field, serializers.SlugRelatedField)
        skill_field.queryset = (
            Skill.objects.filter(organisation_id=org_id) if org_id else Skill.objects.none()
        )
        return fields


class AgentSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    full_name = serializers.CharField(source="user.get_full_name", read_only=True)
    skills = AgentSkillSerializer(source="agent_skills", many=True, read_only=True)

    class Meta:
        model = AgentProfile
        fields = [
            "id",
            "username",
            "full_name",
            "team",
            "languages",
            "skills",
            "capacity_voice",
            "capacity_chat",
            "capacity_email",
            "capacity_sms",
            "voice_exclusive",
            "remote",
            "telework_phone",
        ]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        team = fields["team"]
        assert isinstance(team, serializers.PrimaryKeyRelatedField)
        # An agent is moved only into a team the caller may change (checked again by the action).
        team.queryset = authz.editable(request_user(self), Team)
        return fields

    def validate_languages(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise serializers.ValidationError('Expected a list of language codes, e.g. ["fr"].')
        return value

    def to_representation(self, instance: AgentProfile) -> dict[str, Any]:
        data = super().to_representation(instance)
        # A teleworker's private number: themselves and their own supervisors only.
        if not authz.may_see_private_number(request_user(self), instance):
            data["telework_phone"] = None
        return data


class SkillLevelsSerializer(serializers.Serializer):
    skills = AgentSkillSerializer(many=True)

    def validate_skills(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        codes = [item["skill"].code for item in value]
        if len(codes) != len(set(codes)):
            raise serializers.ValidationError("A skill is listed twice.")
        return value


class AgentViewSet(
    ScopedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AgentSerializer

    def get_queryset(self) -> QuerySet[AgentProfile]:
        return self.scoped(
            AgentProfile.objects.select_related("user")
            .prefetch_related("agent_skills__skill")
            .order_by("user__username")
        )

    def perform_update(self, serializer: Any) -> None:
        agent = serializer.instance
        self.check_change(agent)
        changes = {k: v for k, v in serializer.validated_data.items() if k in PROFILE_FIELDS}
        serializer.instance = do_update_agent_profile(
            actor=self.request.user, agent=agent, changes=changes
        )

    @extend_schema(request=SkillLevelsSerializer, responses={200: AgentSerializer})
    @action(detail=True, methods=["put"], url_path="skills")
    def set_skills(self, request: Request, pk: str | None = None) -> Response:
        """Replace the agent's skills and levels (supervisors)."""
        if not request.user.has_perms(
            ["agents.add_agentskill", "agents.change_agentskill", "agents.delete_agentskill"]
        ):
            self.permission_denied(request, message="Changing skills is for supervisors.")
        agent = self.get_object()
        self.check_change(agent)
        serializer = SkillLevelsSerializer(
            data=request.data,
            context={**self.get_serializer_context(), "organisation_id": agent.organisation_id},
        )
        serializer.is_valid(raise_exception=True)
        do_set_agent_skills(
            actor=request.user,
            agent=agent,
            levels=[(item["skill"], item["level"]) for item in serializer.validated_data["skills"]],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=agent.pk)).data)


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "supervisors"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        supervisors = fields["supervisors"]
        assert isinstance(supervisors, serializers.ManyRelatedField)
        # Users of the caller's organisation (only administrators see them, and only they may
        # change who supervises a team: the action refuses everyone else).
        supervisors.child_relation.queryset = authz.visible(
            request_user(self), get_user_model().objects.all()
        )
        return fields


class TeamViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    serializer_class = TeamSerializer
    http_method_names = ["get", "put", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Team]:
        return self.scoped(Team.objects.order_by("name"))

    def perform_update(self, serializer: Any) -> None:
        team = serializer.instance
        self.check_change(team)
        data = serializer.validated_data
        serializer.instance = do_update_team(
            actor=self.request.user,
            team=team,
            name=data.get("name"),
            supervisors=data.get("supervisors"),
        )


class PresenceSerializer(serializers.ModelSerializer):
    agent_name = serializers.CharField(source="agent.__str__", read_only=True)
    pause_reason = serializers.ChoiceField(
        choices=PauseReason.choices, required=False, allow_blank=True
    )
    state = serializers.ChoiceField(
        choices=[AgentState.OFFLINE, AgentState.AVAILABLE, AgentState.PAUSED], required=False
    )

    class Meta:
        model = AgentPresence
        fields = [
            "agent",
            "agent_name",
            "state",
            "pause_reason",
            "state_since",
            "wrap_up_until",
            "channels_enabled",
            "last_heartbeat_at",
        ]
        read_only_fields = ["agent", "state_since", "wrap_up_until", "last_heartbeat_at"]

    def validate_pause_reason(self, value: str) -> str:
        # "missed" and "supervisor" are set by the system or a supervisor, never chosen (as on
        # the console's status control); they are still read back as they are.
        if value and value not in AGENT_PAUSE_REASONS:
            raise serializers.ValidationError(
                _("This pause reason cannot be chosen: the system or a supervisor sets it.")
            )
        return value


class PresenceViewSet(viewsets.GenericViewSet):
    """The caller's own presence (``me``), and everyone's for supervisors."""

    serializer_class = PresenceSerializer
    permission_classes = [IsAuthenticated]
    queryset = AgentPresence.objects.select_related("agent__user").order_by("agent_id")

    def get_queryset(self) -> QuerySet[AgentPresence]:
        return authz.visible(self.request.user, super().get_queryset())

    def list(self, request: Request) -> Response:
        if not request.user.has_perm("agents.view_agentpresence"):
            raise PermissionDenied("Only supervisors see every agent's presence.")
        return Response(PresenceSerializer(self.get_queryset(), many=True).data)

    def _me(self, request: Request) -> AgentProfile:
        agent = AgentProfile.objects.filter(user_id=request.user.pk or 0).first()
        if agent is None:
            raise PermissionDenied("This account has no agent profile.")
        return agent

    @extend_schema(request=PresenceSerializer, responses={200: PresenceSerializer})
    @action(detail=False, methods=["get", "patch"])
    def me(self, request: Request) -> Response:
        """Read or change my state (available, paused with a reason, offline) and channels."""
        agent = self._me(request)
        if request.method == "PATCH":
            serializer = PresenceSerializer(data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            if "channels_enabled" in data:
                do_set_channels(agent=agent, channels=data["channels_enabled"] or [])
            if "state" in data:
                do_set_agent_state(
                    agent=agent, state=data["state"], reason=data.get("pause_reason", "")
                )
        return Response(PresenceSerializer(AgentPresence.objects.get(agent=agent)).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=False, methods=["post"])
    def heartbeat(self, request: Request) -> Response:
        do_heartbeat(agent_id=self._me(request).pk)
        return Response(status=204)
