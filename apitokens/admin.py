"""Service tokens in the admin: listed, created (the token shown once) and revoked.

Organisation administrators manage their organisation's tokens only; platform administrators
every organisation's (organisations/authz.py decides). Tokens are never edited nor deleted:
revoking keeps the row for the audit (who made it, who revoked it, when it was last used).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext

from organisations import authz
from organisations.models import Organisation

from .actions import do_create_service_token, do_revoke_service_token
from .models import ServiceToken

SECRET_ATTR = "_apitokens_new_secret"  # noqa: S105 (a request attribute's name)


class ServiceTokenForm(forms.ModelForm):
    class Meta:
        model = ServiceToken
        fields = ["name", "organisation", "scope", "expires_at"]


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    form = ServiceTokenForm
    list_display = [
        "name",
        "organisation",
        "scope",
        "token_prefix",
        "state",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
    ]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = [
        "token_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]

    # --- who sees what ---------------------------------------------------------------------

    def _manages(self, request: HttpRequest) -> bool:
        return authz.principal_for(request.user).is_org_admin

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServiceToken]:
        qs = super().get_queryset(request).select_related("organisation", "created_by")
        return authz.visible(request.user, qs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._manages(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request) and (obj is None or authz.can_view(request.user, obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._manages(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token is made, used and revoked, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked tokens stay, for the audit

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self._manages(request)

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        if authz.principal_for(request.user).is_platform_admin:
            return ["scope", "organisation"]
        return ["scope"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "organisation", "scope", "expires_at"]
        return ["name", "organisation", "scope", "expires_at", *self.readonly_fields]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "organisation":
            kwargs["queryset"] = authz.visible(request.user, Organisation).filter(active=True)
            p = authz.principal_for(request.user)
            if p.organisation_id is not None:
                kwargs["initial"] = p.organisation_id
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description=_("token"), ordering="prefix")
    def token_prefix(self, obj: ServiceToken) -> str:
        return f"ccs_{obj.prefix}_…"

    @admin.display(description=_("state"))
    def state(self, obj: ServiceToken) -> str:
        if obj.revoked_at is not None:
            return str(pgettext("API token status", "revoked"))
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return str(_("expired"))
        return str(pgettext("API token status", "active"))

    # --- writes go through the actions -----------------------------------------------------

    def save_model(self, request: HttpRequest, obj: ServiceToken, form: Any, change: bool) -> None:
        if change:
            raise PermissionDenied
        try:
            token, secret = do_create_service_token(
                request.user,
                name=obj.name,
                organisation_id=obj.organisation_id,
                scope=obj.scope,
                expires_at=obj.expires_at,
            )
        except authz.OutOfScope as exc:
            raise PermissionDenied(str(exc)) from exc
        for f in ServiceToken._meta.concrete_fields:
            setattr(obj, f.attname, getattr(token, f.attname))
        obj._state.adding = False
        setattr(request, SECRET_ATTR, secret)

    def response_add(
        self, request: HttpRequest, obj: ServiceToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The token, shown once (this page is never stored nor shown again)."""
        secret = getattr(request, SECRET_ATTR, None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/apitokens/servicetoken/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "token": obj,
                "secret": secret,
                "title": _("Service token created"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke the selected tokens"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ServiceToken]) -> None:
        count = 0
        for token in queryset.filter(revoked_at=None):
            try:
                count += do_revoke_service_token(request.user, token)
            except (authz.OutOfScope, ValidationError) as exc:
                self.message_user(request, f"{token}: {exc}", messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )
