from django.contrib import admin

from .models import EscalationStep, Queue, QueueSkill, Skill


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    prepopulated_fields = {"code": ["name"]}


class QueueSkillInline(admin.TabularInline):
    model = QueueSkill
    extra = 1


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    fk_name = "queue"
    extra = 1


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "priority", "sla_target_seconds", "team", "active"]
    list_filter = ["active", "team"]
    search_fields = ["code", "name"]
    inlines = [QueueSkillInline, EscalationStepInline]
