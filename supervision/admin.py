"""The admin of agent profiles (app ``agents``: its URLs are ``/admin/agents/agentprofile/``).

It lives here because it is an interface over supervision's audited actions: skill levels
changed in its inline go through :func:`supervision.actions.do_set_skill_levels` (audited,
routing told), which the agents app, below supervision, must not import. Teams' admin stays in
``agents/admin.py``.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from agents.actions import PROFILE_FIELDS, TELEWORK_FIELDS, do_update_agent_profile
from agents.models import AgentProfile, AgentSkill
from organisations import authz
from organisations.admin_base import ScopedModelAdmin, ScopedTabularInline

from .access import scope_for
from .actions import LevelChange, do_set_skill_levels


class AgentSkillInline(ScopedTabularInline):
    model = AgentSkill
    extra = 1


@admin.register(AgentProfile)
class AgentProfileAdmin(ScopedModelAdmin):
    list_filter = ["team", "remote"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    inlines = [AgentSkillInline]

    def get_list_display(self, request: HttpRequest) -> Any:
        user = request.user

        @admin.display(description=_("telework phone number"))
        def telework_phone(agent: AgentProfile) -> str:
            if authz.may_see_private_number(user, agent):
                return agent.telework_phone
            return "-"

        return ["__str__", "team", "remote", telework_phone]

    def _private(self, request: HttpRequest, obj: AgentProfile | None) -> bool:
        """The teleworker's private number is hidden from whoever may not see it."""
        if obj is None:
            return not authz.principal_for(request.user).is_org_admin
        return not authz.may_see_private_number(request.user, obj)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])
        if self._private(request, obj):
            exclude.append("telework_phone")
        return exclude

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_fields(request, obj))
        if self._private(request, obj):
            fields = [f for f in fields if f != "telework_phone"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly.append("user")  # a profile stays its user's
        if self._private(request, obj):
            readonly.append("remote")
        return readonly

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        stored = AgentProfile.objects.get(pk=obj.pk)
        changes = {
            name: form.cleaned_data[name] for name in form.changed_data if name in PROFILE_FIELDS
        }
        if not authz.may_see_private_number(request.user, stored):
            for name in TELEWORK_FIELDS:
                changes.pop(name, None)
        updated = do_update_agent_profile(actor=request.user, agent=stored, changes=changes)
        obj.refresh_from_db()
        obj.telework_phone = updated.telework_phone

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is AgentSkill:
            self._save_skills(request, form.instance, formset)
            return
        super().save_formset(request, form, formset, change)

    def _save_skills(self, request: HttpRequest, agent: AgentProfile, formset: Any) -> None:
        """Skill levels go through the supervision action: audited, routing told."""
        authz.check_change(request.user, agent)
        scope = scope_for(request.user)
        if scope is None:
            raise authz.OutOfScope("you do not change skills")
        changes: list[LevelChange] = []
        for inline in formset.forms:
            if not inline.has_changed() and inline not in formset.deleted_forms:
                continue
            before = inline.initial.get("skill") if inline.instance.pk else None
            data = getattr(inline, "cleaned_data", {})
            skill = data.get("skill")
            if inline in formset.deleted_forms:
                if before is not None:
                    changes.append(LevelChange(agent.pk, int(before), None))
                continue
            if skill is None:
                continue
            if skill.organisation_id != agent.organisation_id:
                raise authz.OutOfScope("a skill of another organisation")
            if before is not None and int(before) != skill.pk:
                changes.append(LevelChange(agent.pk, int(before), None))
            changes.append(LevelChange(agent.pk, skill.pk, data.get("level")))
        do_set_skill_levels(actor=request.user, scope=scope, changes=changes, note="admin")
        # What the admin's history message reads.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
