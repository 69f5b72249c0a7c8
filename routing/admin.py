from django.contrib import admin

from configuration.models import EscalationStep, Queue, QueueSkill, Skill
from organisations.admin_base import ScopedModelAdmin, ScopedTabularInline


@admin.register(Skill)
class SkillAdmin(ScopedModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    prepopulated_fields = {"code": ["name"]}


class QueueSkillInline(ScopedTabularInline):
    model = QueueSkill
    extra = 1


class EscalationStepInline(ScopedTabularInline):
    model = EscalationStep
    fk_name = "queue"
    extra = 1


@admin.register(Queue)
class QueueAdmin(ScopedModelAdmin):
    list_display = ["code", "name", "priority", "sla_target_seconds", "team", "active"]
    list_filter = ["active", "team"]
    search_fields = ["code", "name"]
    inlines = [QueueSkillInline, EscalationStepInline]
