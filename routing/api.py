"""REST API for skills and queues (supervisors write, agents read)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from .models import EscalationStep, Queue, QueueSkill, Skill


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
