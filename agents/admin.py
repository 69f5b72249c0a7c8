from django.contrib import admin

from .models import AgentProfile, AgentSkill, Team


class AgentSkillInline(admin.TabularInline):
    model = AgentSkill
    extra = 1


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ["__str__", "team", "remote", "telework_phone"]
    list_filter = ["team", "remote"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    inlines = [AgentSkillInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name"]
    filter_horizontal = ["supervisors"]
