"""The admin of teams. Agent profiles' admin is supervision's (``supervision/admin.py``): its
skill levels go through supervision's audited action."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from configuration.models import Team
from organisations import authz
from organisations.admin_base import ScopedModelAdmin

from .actions import do_update_team


@admin.register(Team)
class TeamAdmin(ScopedModelAdmin):
    list_display = ["name"]
    filter_horizontal = ["supervisors"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if not authz.principal_for(request.user).is_org_admin:
            readonly.append("supervisors")  # nobody widens their own scope
        return readonly

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # supervisors: in save_related

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        supervisors = form.cleaned_data.get("supervisors") if "supervisors" in form.fields else None
        do_update_team(
            actor=request.user,
            team=form.instance,
            name=form.cleaned_data.get("name"),
            supervisors=supervisors,
        )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
