"""REST API for agents and teams. Changing skills needs the supervisor role."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from routing.models import Skill

from .models import AgentProfile, AgentSkill, Team


class AgentSkillSerializer(serializers.ModelSerializer):
    skill = serializers.SlugRelatedField(slug_field="code", queryset=Skill.objects.all())
    level = serializers.IntegerField(min_value=1, max_value=5)

    class Meta:
        model = AgentSkill
        fields = ["skill", "level"]


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

    def validate_languages(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise serializers.ValidationError('Expected a list of language codes, e.g. ["fr"].')
        return value


class SkillLevelsSerializer(serializers.Serializer):
    skills = AgentSkillSerializer(many=True)

    def validate_skills(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        codes = [item["skill"].code for item in value]
        if len(codes) != len(set(codes)):
            raise serializers.ValidationError("A skill is listed twice.")
        return value


class AgentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AgentSerializer

    def get_queryset(self) -> QuerySet[AgentProfile]:
        return (
            AgentProfile.objects.select_related("user")
            .prefetch_related("agent_skills__skill")
            .order_by("user__username")
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
        serializer = SkillLevelsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            AgentProfile.objects.select_for_update().filter(pk=agent.pk).first()
            agent.agent_skills.all().delete()
            AgentSkill.objects.bulk_create(
                AgentSkill(agent=agent, skill=item["skill"], level=item["level"])
                for item in serializer.validated_data["skills"]
            )
        return Response(AgentSerializer(self.get_queryset().get(pk=agent.pk)).data)


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "supervisors"]


class TeamViewSet(viewsets.ModelViewSet):
    queryset = Team.objects.order_by("name")
    serializer_class = TeamSerializer
    http_method_names = ["get", "put", "patch", "head", "options"]
