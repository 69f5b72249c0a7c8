"""Webhook subscriptions and their delivery log in the admin: organisation administrators
manage their organisation's (platform administrators every organisation's), through the
authorization layer like every other model admin (organisations/admin_base.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from organisations import authz
from organisations.admin_base import ScopedModelAdmin, ScopedModelForm, ScopedTabularInline

from . import actions, targets
from .models import Delivery, DeliveryAttempt, Event, Subscription, new_secret


class SubscriptionForm(ScopedModelForm):
    url = forms.URLField(
        label=_("target URL"),
        max_length=500,
        assume_scheme="https",
        help_text=_("HTTPS address that receives the events (POST, JSON body)."),
    )
    events = forms.MultipleChoiceField(
        label=_("events"),
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The events sent to this address."),
    )

    class Meta:
        model = Subscription
        fields = ["organisation", "name", "url", "events", "active"]

    def clean_url(self) -> str:
        url = str(self.cleaned_data.get("url") or "").strip()
        try:
            targets.validate_target(url)
        except targets.TargetRefused as exc:
            raise ValidationError(str(exc)) from exc
        return url


def _describe(outcome: actions.Outcome) -> tuple[str, int]:
    answer = outcome.answer
    if answer.ok:
        return (
            str(_("Test delivery: the receiver answered HTTP %(status)s in %(ms)d ms."))
            % {"status": answer.status, "ms": answer.duration_ms},
            messages.SUCCESS,
        )
    return (
        str(_("Test delivery failed: %(error)s")) % {"error": outcome.delivery.last_error},
        messages.ERROR,
    )


@admin.register(Subscription)
class SubscriptionAdmin(ScopedModelAdmin):
    form = SubscriptionForm
    change_form_template = "admin/webhooks/subscription/change_form.html"
    list_display = [
        "name",
        "url",
        "event_list",
        "active",
        "consecutive_failures",
        "disabled_reason",
        "organisation",
    ]
    list_filter = ["active"]
    search_fields = ["name", "url"]
    actions = ["send_test", "renew_secret"]
    fields = [
        "organisation",
        "name",
        "url",
        "events",
        "active",
        "secret",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_at",
    ]
    readonly_fields = [
        "secret",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_at",
    ]

    @admin.display(description=_("events"))
    def event_list(self, obj: Subscription) -> str:
        labels = dict(Event.choices)
        return ", ".join(str(labels.get(e, e)) for e in obj.events or [])

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        if obj.active and (change and "active" in form.changed_data):
            # Switched on again: the count starts over, the deliveries still pending go out.
            obj.consecutive_failures = 0
            obj.disabled_at = None
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)

    # --- the test button and the actions ------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/test-delivery/",
                self.admin_site.admin_view(require_POST(self.test_delivery_view)),
                name="webhooks_subscription_test_delivery",
            )
        ]
        return own + super().get_urls()

    def test_delivery_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        text, level = _describe(actions.do_send_test_delivery(obj))
        self.message_user(request, text, level)
        return HttpResponseRedirect(reverse("admin:webhooks_subscription_change", args=[obj.pk]))

    @admin.action(description=_("Send a test delivery"), permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        for subscription in self.editable_queryset(request, queryset):
            text, level = _describe(actions.do_send_test_delivery(subscription))
            self.message_user(request, f"{subscription}: {text}", level)

    @admin.action(description=_("Replace the signing secret"), permissions=["change"])
    def renew_secret(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        count = 0
        for subscription in self.editable_queryset(request, queryset):
            subscription.secret = new_secret()
            subscription.save(update_fields=["secret", "updated_at"])
            count += 1
        self.message_user(
            request,
            ngettext(
                "%(count)d secret replaced: give the new one to the receiver.",
                "%(count)d secrets replaced: give the new ones to their receivers.",
                count,
            )
            % {"count": count},
            messages.WARNING,
        )


class DeliveryAttemptInline(ScopedTabularInline):
    model = DeliveryAttempt
    fields = ["number", "at", "status_code", "duration_ms", "error"]
    readonly_fields = ["number", "at", "status_code", "duration_ms", "error"]
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Every field of the delivery page, all read only.
DELIVERY_FIELDS: tuple[str, ...] = (
    "subscription",
    "event",
    "event_id",
    "status",
    "attempts",
    "next_attempt_at",
    "delivered_at",
    "last_status_code",
    "last_error",
    "is_test",
    "created_at",
    "body",
)


@admin.register(Delivery)
class DeliveryAdmin(ScopedModelAdmin):
    """The delivery log: read only; deleted with its subscription, or pruned after
    ``WEBHOOK_LOG_RETENTION_DAYS``."""

    list_display = [
        "created_at",
        "subscription",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "delivered_at",
        "next_attempt_at",
    ]
    list_filter = ["status", "event", "is_test", "subscription"]
    list_select_related = ["subscription"]
    inlines = [DeliveryAttemptInline]
    actions = ["send_again"]
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        """Back to the log (Django sends users without the change right to the admin's index)."""
        response = super().response_delete(request, obj_display, obj_id)
        if isinstance(response, HttpResponseRedirect):
            return HttpResponseRedirect(reverse("admin:webhooks_delivery_changelist"))
        return response

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request) and authz.principal_for(request.user).can_write

    @admin.action(description=_("Send again now"), permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = actions.do_retry_now(self.get_queryset(request).filter(pk__in=queryset))
        self.message_user(
            request,
            ngettext(
                "%(count)d delivery will be sent again.",
                "%(count)d deliveries will be sent again.",
                count,
            )
            % {"count": count},
        )
