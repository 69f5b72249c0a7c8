"""Organisations, memberships and sharing agreements in the admin; user accounts, second-factor
devices and login lockouts scoped to the organisation of whoever administers them.

- organisations: platform administrators add, change and delete them; an organisation
  administrator sees and changes their own only;
- memberships: an organisation administrator manages those of their organisation's users (never
  their own); only platform administrators create them or move a user to another organisation;
- sharing agreements: platform administrators only; who set one up is recorded, and one is
  revoked (who, when), never deleted;
- user accounts (and their TOTP devices, and login lockouts): organisation administrators manage
  their organisation's users only, and never superusers, platform administrators or those
  rights; platform administrators manage everyone.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kernel.roles import ADMINISTRATOR, AGENT, PLATFORM_ADMINISTRATOR, SUPERVISOR

from . import authz
from .admin_base import ScopedModelAdmin, ScopedModelForm
from .models import Membership, Organisation, SharingAgreement

User = get_user_model()


def _is_platform_admin(request: HttpRequest) -> bool:
    return authz.principal_for(request.user).is_platform_admin


def managed_users(request: HttpRequest, qs: QuerySet[Any] | None = None) -> QuerySet[Any]:
    """The accounts ``request.user`` administers: everyone for a platform administrator; for
    an organisation administrator their organisation's users, superusers and platform
    administrators excepted; nobody for anyone else."""
    qs = User.objects.all() if qs is None else qs
    principal = authz.principal_for(request.user)
    if principal.is_platform_admin:
        return qs
    if principal.role != authz.Role.ORG_ADMIN or not principal.can_write:
        return qs.none()
    return authz.editable(request.user, qs).exclude(
        pk__in=User.objects.filter(is_superuser=True).values("pk")
        | User.objects.filter(groups__name=PLATFORM_ADMINISTRATOR).values("pk")
    )


# --------------------------------------------------------------------------- organisations


@admin.register(Organisation)
class OrganisationAdmin(ScopedModelAdmin):
    list_display = ["name", "slug", "siret", "time_zone", "default_language", "active"]
    list_filter = ["active"]
    search_fields = ["name", "slug", "siret"]
    prepopulated_fields = {"slug": ["name"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_platform_admin(request) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_platform_admin(request) and super().has_delete_permission(request, obj)

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.prepopulated_fields if _is_platform_admin(request) else {}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if not _is_platform_admin(request):
            readonly += ["slug", "active"]  # the platform's decisions
        return readonly


class MembershipForm(ScopedModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organisation"]


@admin.register(Membership)
class MembershipAdmin(ScopedModelAdmin):
    form = MembershipForm
    list_display = ["user", "organisation"]
    list_filter = ["organisation"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    raw_id_fields = ["user"]

    def scoped_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        rows = super().scoped_queryset(request, qs)
        if _is_platform_admin(request):
            return rows
        return rows.filter(user__in=managed_users(request))

    def editable_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        # Nobody changes their own membership (nor widens or leaves their own scope).
        rows = super().editable_queryset(request, qs).exclude(user_id=request.user.pk)
        if _is_platform_admin(request):
            return rows
        return rows.filter(user__in=managed_users(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_platform_admin(request) and super().has_add_permission(request)

    def organisation_is_chosen(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_platform_admin(request)  # only they move a user to another organisation

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly.append("user")
        return readonly

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            kwargs["queryset"] = managed_users(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if obj.user_id == request.user.pk:
            raise authz.OutOfScope("nobody changes their own membership")
        if not _is_platform_admin(request):
            authz.organisation_for_new(request.user, obj.organisation_id)
        obj.full_clean()
        super().save_model(request, obj, form, change)
        authz.forget_principal(obj.user)


class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("active", _("active")), ("revoked", _("revoked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(revoked_at=None)
        if self.value() == "revoked":
            return queryset.exclude(revoked_at=None)
        return queryset


@admin.register(SharingAgreement)
class SharingAgreementAdmin(ScopedModelAdmin):
    list_display = [
        "owner",
        "grantee",
        "reason",
        "is_active",
        "created_by",
        "created_at",
        "revoked_by",
        "revoked_at",
    ]
    list_filter = [ActiveFilter, "owner", "grantee"]
    search_fields = ["owner__name", "grantee__name", "reason"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["owner", "grantee", "reason"]
        return [
            "owner",
            "grantee",
            "reason",
            "created_by",
            "created_at",
            "revoked_by",
            "revoked_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        # An agreement is not edited: it is revoked, and a new one set up.
        return [
            "owner",
            "grantee",
            "reason",
            "created_by",
            "created_at",
            "revoked_by",
            "revoked_at",
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_platform_admin(request) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, never deleted: the audit stays

    @admin.display(description=_("active"), boolean=True)
    def is_active(self, obj: SharingAgreement) -> bool:
        return obj.active

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return  # nothing of an agreement changes here (revoke it instead)
        obj.created_by = request.user
        obj.full_clean()
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Revoke the selected sharing agreements"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[SharingAgreement]) -> None:
        if not _is_platform_admin(request):
            raise authz.OutOfScope("only platform administrators revoke sharing agreements")
        with transaction.atomic():
            rows = list(queryset.select_for_update().filter(revoked_at=None))
            now = timezone.now()
            for agreement in rows:
                agreement.revoked_at = now
                agreement.revoked_by = request.user  # type: ignore[assignment]
                agreement.save(update_fields=["revoked_at", "revoked_by"])
        self.message_user(
            request,
            ngettext(
                "%(count)d sharing agreement revoked.",
                "%(count)d sharing agreements revoked.",
                len(rows),
            )
            % {"count": len(rows)},
            messages.SUCCESS,
        )


# --------------------------------------------------------------------------- user accounts

ROLE_GROUPS = (AGENT, SUPERVISOR, ADMINISTRATOR)


class ScopedUserAdmin(ScopedModelAdmin, UserAdmin):
    """django.contrib.auth's user admin, for the users one administers."""

    form = UserChangeForm  # type: ignore[assignment]

    def scoped_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        if _is_platform_admin(request):
            return qs
        return qs.filter(pk__in=managed_users(request).values("pk"))

    def editable_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        return self.scoped_queryset(request, qs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or _is_platform_admin(request):
            return fieldsets
        # Superuser status and individual permissions are the platform's: not even shown.
        hidden = {"is_superuser", "user_permissions"}
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for name, options in fieldsets
        ]

    def get_list_filter(self, request: HttpRequest) -> Any:
        if _is_platform_admin(request):
            return super().get_list_filter(request)
        return ["is_staff", "is_active", "groups"]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "groups":
            groups = Group.objects.all()
            if not _is_platform_admin(request):
                groups = groups.filter(name__in=ROLE_GROUPS)
            kwargs["queryset"] = groups
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        platform = _is_platform_admin(request)
        if not platform and obj.is_superuser:
            raise authz.OutOfScope("only platform administrators manage superusers")
        organisation_id = None
        if not change and not platform:
            organisation_id = authz.organisation_for_new(request.user)
        super().save_model(request, obj, form, change)
        if organisation_id is not None:
            # A user created by an organisation administrator works for that organisation.
            Membership.objects.create(user=obj, organisation_id=organisation_id)

    def check_save(self, request: HttpRequest, obj: Any, change: bool, fields: Any = None) -> None:
        if change:
            self.check_row_editable(request, obj)
        elif not self._may_create(request):
            raise authz.OutOfScope("you may not create user accounts")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if not _is_platform_admin(request):
            groups = form.cleaned_data.get("groups")
            if groups is not None and groups.exclude(name__in=ROLE_GROUPS).exists():
                raise authz.OutOfScope("only platform administrators grant that role")
        super().save_related(request, form, formsets, change)
        authz.forget_principal(form.instance)

    def _may_create(self, request: HttpRequest) -> bool:
        principal = authz.principal_for(request.user)
        return principal.is_platform_admin or (
            principal.role == authz.Role.ORG_ADMIN and principal.can_write
        )


class ScopedGroupAdmin(ScopedModelAdmin, GroupAdmin):
    """Role groups: platform administrators only (the authorization layer does not know the
    model, so nobody else sees it)."""


class ByUserAdminMixin:
    """Rows of a user (second-factor devices): those of the accounts one administers."""

    user_path = "user"

    def _may_use_model(self, request: HttpRequest) -> bool:
        principal = authz.principal_for(request.user)
        return principal.is_platform_admin or principal.role == authz.Role.ORG_ADMIN

    def scoped_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        if _is_platform_admin(request):
            return qs
        return qs.filter(**{f"{self.user_path}__in": managed_users(request).values("pk")})

    def editable_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        return self.scoped_queryset(request, qs)

    def _may_create(self, request: HttpRequest) -> bool:
        return self._may_use_model(request)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == self.user_path:
            kwargs["queryset"] = managed_users(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def check_save(self, request: HttpRequest, obj: Any, change: bool, fields: Any = None) -> None:
        if change:
            self.check_row_editable(request, obj)  # type: ignore[attr-defined]
        if not managed_users(request).filter(pk=getattr(obj, f"{self.user_path}_id")).exists():
            raise authz.OutOfScope("a device of a user you do not manage")


class ByUsernameAdminMixin(ByUserAdminMixin):
    """Login attempts and lockouts: those for the usernames of the accounts one administers."""

    def scoped_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        if _is_platform_admin(request):
            return qs
        return qs.filter(username__in=managed_users(request).values("username"))

    def check_save(self, request: HttpRequest, obj: Any, change: bool, fields: Any = None) -> None:
        if not self.scoped_queryset(request, type(obj)._default_manager.filter(pk=obj.pk)).exists():
            raise authz.OutOfScope("a login attempt of a user you do not manage")


def _rescope(model: Any, mixins: tuple[type, ...], **attrs: Any) -> None:
    """Put a third-party model admin under the authorization layer."""
    if not admin.site.is_registered(model):
        return
    original = type(admin.site._registry[model])
    if issubclass(original, ScopedModelAdmin):
        return
    if "form" not in original.__dict__:
        attrs.setdefault("form", ScopedModelForm)
    else:
        attrs.setdefault("form", original.form)
    scoped = type(
        f"Scoped{original.__name__}",
        (*mixins, ScopedModelAdmin, original),
        {"__module__": __name__, **attrs},
    )
    admin.site.unregister(model)
    admin.site.register(model, scoped)


admin.site.unregister(User)
admin.site.register(User, ScopedUserAdmin)
if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, ScopedGroupAdmin)


def _rescope_third_party() -> None:
    """Devices and lockouts (their apps come after this one: import their admin first).
    Both apps are required (the second factor and the lockout are not optional)."""
    import axes.admin  # noqa: F401
    import django_otp.plugins.otp_totp.admin  # noqa: F401
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_otp.plugins.otp_totp.models import TOTPDevice

    _rescope(TOTPDevice, (ByUserAdminMixin,))
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        _rescope(model, (ByUsernameAdminMixin,))


_rescope_third_party()
