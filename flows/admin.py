"""Supervisors create, edit and publish flows here until the visual editor arrives."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from organisations import authz
from organisations.admin_base import ScopedModelAdmin, ScopedModelForm, ScopedTabularInline

from .actions import (
    FlowNotDraft,
    FlowValidationError,
    do_create_flow_version,
    do_publish_flow_version,
    validation_errors,
)
from .models import EndpointFlow, Flow, FlowVersion


class PrettyJSONEncoder(json.JSONEncoder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(indent=2, ensure_ascii=False, sort_keys=False)
        super().__init__(*args, **kwargs)


class FlowVersionForm(ScopedModelForm):
    graph = forms.JSONField(
        label=_("graph"),
        encoder=PrettyJSONEncoder,
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"}),
        help_text=_("The flow as JSON; see docs/channels.md for the node types."),
    )

    class Meta:
        model = FlowVersion
        fields = ["flow", "graph", "note"]


class EndpointFlowInline(ScopedTabularInline):
    model = EndpointFlow
    extra = 0


class FlowVersionInline(ScopedTabularInline):
    model = FlowVersion
    fields = ("number", "status", "note", "created_at", "published_at")
    readonly_fields = ("number", "status", "note", "created_at", "published_at")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Flow)
class FlowAdmin(ScopedModelAdmin):
    list_display = ["name", "published_version", "updated_at"]
    search_fields = ["name"]
    inlines = [EndpointFlowInline, FlowVersionInline]


def _errors_html(errors: list[str]) -> str:
    if not errors:
        return format_html("<strong>{}</strong>", _("Valid: this version can be published."))
    items = format_html_join("", "<li><code>{}</code></li>", ((e,) for e in errors))
    return format_html('<ul class="errorlist">{}</ul>', items)


@admin.register(FlowVersion)
class FlowVersionAdmin(ScopedModelAdmin):
    form = FlowVersionForm
    change_form_template = "admin/flows/flowversion/change_form.html"
    list_display = ["flow", "number", "status", "note", "created_at", "published_at"]
    list_filter = ["status", "flow"]
    actions = ["publish", "copy_as_draft"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["number", "status", "validation", "created_by", "published_at", "published_by"]
        if obj is not None and obj.status != FlowVersion.Status.DRAFT:
            fields += ["flow", "graph", "note"]  # a published version never changes
        elif obj is not None:
            fields += ["flow"]
        return fields

    @admin.display(description=_("validation"))
    def validation(self, obj: FlowVersion) -> str:
        return _errors_html(validation_errors(obj.graph))

    def save_model(self, request: HttpRequest, obj: FlowVersion, form: Any, change: bool) -> None:
        if change:
            if FlowVersion.objects.filter(pk=obj.pk, status=FlowVersion.Status.DRAFT).exists():
                super().save_model(request, obj, form, change)
            return  # a published or archived version never changes (its fields are read-only)
        authz.check_change(request.user, obj.flow)
        created = do_create_flow_version(
            flow=obj.flow, graph=obj.graph, note=obj.note, actor=request.user
        )
        obj.pk, obj.number = created.pk, created.number
        obj.refresh_from_db()

    def _publish(self, request: HttpRequest, version: FlowVersion) -> bool:
        authz.check_change(request.user, version)
        try:
            do_publish_flow_version(version=version, actor=request.user)
        except FlowValidationError as exc:
            self.message_user(
                request,
                format_html(
                    "{} {}",
                    _("Version %(n)s was not published:") % {"n": version.number},
                    _errors_html(exc.errors),
                ),
                messages.ERROR,
            )
            return False
        except FlowNotDraft as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        self.message_user(
            request,
            _("Version %(n)s of %(flow)s is now live.")
            % {"n": version.number, "flow": version.flow},
            messages.SUCCESS,
        )
        return True

    def response_change(self, request: HttpRequest, obj: FlowVersion) -> HttpResponse:
        if "_publish" in request.POST:
            self._publish(request, obj)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.action(description=_("Publish the selected draft"))
    def publish(self, request: HttpRequest, queryset: QuerySet[FlowVersion]) -> None:
        for version in queryset.order_by("pk"):
            self._publish(request, version)

    @admin.action(description=_("Copy as a new draft"))
    def copy_as_draft(self, request: HttpRequest, queryset: QuerySet[FlowVersion]) -> None:
        for version in queryset.order_by("pk"):
            authz.check_change(request.user, version.flow)
            draft = do_create_flow_version(
                flow=version.flow,
                graph=version.graph,
                note=f"copy of v{version.number}",
                actor=request.user,
            )
            self.message_user(request, _("Draft v%(n)s created.") % {"n": draft.number})
