"""The Django admin, through the authorization layer (:mod:`organisations.authz`).

Every ``ModelAdmin`` of the project derives from :class:`ScopedModelAdmin` (inlines from
:class:`ScopedInlineMixin`): the change lists show only the rows the user may read, a row
outside their scope is "not found", the change and delete permissions hold only for rows they
may change, and every choice in a form (foreign keys, many-to-many, list filters) offers only
rows they may read. The ``organisation`` of a new row is the user's own (hidden from the form);
a platform administrator chooses it, and it never changes afterwards. A form linking rows of two
organisations is refused with a message rather than an error page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import authz
from .models import OrganisationRequired

ORGANISATION = "organisation"

# Models every staff user may choose from whatever their organisation (reference data).
GLOBAL_CHOICES = {"contenttypes.contenttype"}


def is_owned(model: type[models.Model]) -> bool:
    """Does this model carry its own ``organisation`` (the OrganisationOwned mixin)?"""
    try:
        field = model._meta.get_field(ORGANISATION)
    except Exception:
        return False
    related = getattr(field, "related_model", None)
    return isinstance(related, type) and (
        related._meta.label_lower == "organisations.organisation"  # type: ignore[attr-defined]
    )


def choosable(
    user: Any, model: type[models.Model], qs: QuerySet[Any] | None = None
) -> QuerySet[Any]:
    """The rows of ``model`` a form may link a record to: those the user may read, and of their
    own organisation only (a share gives read access, never the right to link to it)."""
    if qs is None:
        qs = model._default_manager.all()
    label = model._meta.label_lower
    if label in GLOBAL_CHOICES:
        return qs
    rows = authz.visible(user, qs)
    principal = authz.principal_for(user)
    path = authz.ORGANISATION_PATH.get(label)
    if not principal.is_platform_admin and path and principal.organisation_id is not None:
        rows = rows.filter(**{path: principal.organisation_id})
    return rows


def linked_organisations(instance: models.Model, names: Any = None) -> dict[str, int]:
    """field name -> organisation id of the rows ``instance`` links to (foreign keys; only
    those in ``names`` when given)."""
    found: dict[str, int] = {}
    for field in instance._meta.concrete_fields:
        if not field.is_relation or field.name == ORGANISATION or not field.many_to_one:
            continue
        if names is not None and field.name not in names:
            continue
        if getattr(instance, field.attname, None) is None:
            continue
        try:
            target = getattr(instance, field.name)
        except models.ObjectDoesNotExist:
            continue
        org_id = _organisation_of(target)
        if org_id is not None:
            found[field.name] = org_id
    return found


def _organisation_of(row: Any) -> int | None:
    org_id = getattr(row, "organisation_id", None)
    if org_id is not None:
        return int(org_id)
    # A row without its own organisation field (an agent's skill, a queue's step): its parent's.
    if isinstance(row, models.Model) and row._meta.label_lower != "organisations.organisation":
        path = authz.ORGANISATION_PATH.get(row._meta.label_lower)
        if path and "__" in path:
            value = type(row)._default_manager.filter(pk=row.pk).values_list(path, flat=True)
            first = value.first()
            return int(first) if first is not None else None
    return None


class ScopedModelForm(forms.ModelForm):
    """Sets the organisation of a new row before validation (so the per-organisation unique
    constraints are checked, not left to the database) and refuses links across organisations."""

    scoped_user: Any = None

    def _post_clean(self) -> None:
        instance = self.instance
        owned = is_owned(type(instance))
        if (
            owned
            and self.scoped_user is not None
            and ORGANISATION not in self.fields
            and instance._state.adding
            and getattr(instance, "organisation_id", None) is None
        ):
            linked = sorted(
                {
                    org_id
                    for value in getattr(self, "cleaned_data", {}).values()
                    if isinstance(value, models.Model)
                    and (org_id := _organisation_of(value)) is not None
                }
            )
            try:
                instance.organisation_id = authz.organisation_for_new(
                    self.scoped_user, linked[0] if linked else None
                )
            except (authz.OutOfScope, OrganisationRequired):
                self.add_error(None, _("This record cannot be created in your organisation."))
        super()._post_clean()  # type: ignore[misc]
        if owned and getattr(instance, "organisation_id", None) is not None:
            excluded = self._get_validation_exclusions()  # type: ignore[attr-defined]
            if ORGANISATION in excluded:
                again = excluded - {ORGANISATION}
                try:
                    instance.validate_unique(exclude=again)
                    instance.validate_constraints(exclude=again)
                except ValidationError as exc:
                    self._update_errors(exc)  # type: ignore[attr-defined]
        self._refuse_cross_organisation_links()

    def _refuse_cross_organisation_links(self) -> None:
        instance = self.instance
        own = getattr(instance, "organisation_id", None)
        linked = linked_organisations(instance, self.fields)
        orgs = {own} if own is not None else set(linked.values())
        if len(orgs) > 1:
            self.add_error(None, _("These choices belong to different organisations."))
            return
        expected = next(iter(orgs), None)
        for name, org_id in linked.items():
            if org_id != expected:
                self.add_error(name, _("This choice belongs to another organisation."))
                return
        for name, field in self.fields.items():
            if not isinstance(field, forms.ModelMultipleChoiceField) or name not in getattr(
                self, "cleaned_data", {}
            ):
                continue
            values = self.cleaned_data[name] or []
            for value in values:
                value_org = _organisation_of(value)
                if value_org is not None and expected is not None and value_org != expected:
                    self.add_error(name, _("This choice belongs to another organisation."))
                    break


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """A list filter on a relation offering only rows the user may read."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        ordering = self.field_admin_ordering(field, request, model_admin)
        related = field.related_model
        if related._meta.label_lower in GLOBAL_CHOICES:
            return super().field_choices(field, request, model_admin)
        allowed = authz.visible(request.user, related).values("pk")
        return field.get_choices(
            include_blank=False, limit_choices_to={"pk__in": allowed}, ordering=ordering
        )


class ScopedMixin:
    """What model admins and inlines share: scoped querysets and form choices."""

    model: type[models.Model]

    def scoped_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        """The rows the user reads here (a subclass may narrow it further)."""
        return authz.visible(request.user, qs)

    def editable_queryset(self, request: HttpRequest, qs: QuerySet[Any]) -> QuerySet[Any]:
        """The rows the user may change or delete here."""
        return authz.editable(request.user, qs)

    def row_visible(self, request: HttpRequest, obj: Any) -> bool:
        return self.scoped_queryset(request, type(obj)._default_manager.filter(pk=obj.pk)).exists()

    def row_editable(self, request: HttpRequest, obj: Any) -> bool:
        rows = type(obj)._default_manager.filter(pk=obj.pk)
        return self.editable_queryset(request, rows).exists()

    def check_row_editable(self, request: HttpRequest, obj: Any) -> None:
        if not self.row_editable(request, obj):
            raise authz.OutOfScope(f"you may not change {obj._meta.label_lower} #{obj.pk}")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.scoped_queryset(request, super().get_queryset(request))  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs:
            base = self.get_field_queryset(None, db_field, request)  # type: ignore[attr-defined]
            kwargs["queryset"] = choosable(request.user, db_field.related_model, base)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs:
            base = self.get_field_queryset(None, db_field, request)  # type: ignore[attr-defined]
            kwargs["queryset"] = choosable(request.user, db_field.related_model, base)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def _may_use_model(self, request: HttpRequest) -> bool:
        """Models the authorization layer does not know are for platform administrators."""
        principal = authz.principal_for(request.user)
        if principal.is_platform_admin:
            return True
        return authz.is_registered(self.model) and authz.label_of(self.model) not in (
            authz.PLATFORM_ONLY
        )

    def _may_create(self, request: HttpRequest) -> bool:
        principal = authz.principal_for(request.user)
        if principal.is_platform_admin:
            return True
        return (
            self._may_use_model(request)
            and principal.can_write
            and principal.organisation_id is not None
            and principal.role != authz.Role.AGENT
        )


def _with_user(form: Any, user: Any) -> Any:
    if isinstance(form, type) and issubclass(form, ScopedModelForm):
        form.scoped_user = user
    return form


class ScopedModelAdmin(ScopedMixin, admin.ModelAdmin):
    """A model admin that shows and changes only what :mod:`organisations.authz` allows."""

    form = ScopedModelForm

    # -- permissions

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not self._may_use_model(request) or not super().has_view_permission(request, obj):
            return False
        return obj is None or self.row_visible(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not self._may_use_model(request) or not super().has_change_permission(request, obj):
            return False
        if obj is None:
            return authz.principal_for(request.user).can_write
        return self.row_editable(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not self._may_use_model(request) or not super().has_delete_permission(request, obj):
            return False
        if obj is None:
            return authz.principal_for(request.user).can_write
        return self.row_editable(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_create(request) and super().has_add_permission(request)

    # -- the organisation field

    def organisation_is_chosen(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only a platform administrator chooses the organisation, and only of a new row."""
        return obj is None and authz.principal_for(request.user).is_platform_admin

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])
        if is_owned(self.model) and obj is None and not self.organisation_is_chosen(request, obj):
            exclude.append(ORGANISATION)
        return exclude

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_fields(request, obj))
        if is_owned(self.model) and obj is None and not self.organisation_is_chosen(request, obj):
            fields = [f for f in fields if f != ORGANISATION]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if (
            is_owned(self.model)
            and obj is not None
            and not self.organisation_is_chosen(request, obj)
            and ORGANISATION not in readonly
        ):
            readonly.append(ORGANISATION)
        return readonly

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        return _with_user(super().get_form(request, obj, change=change, **kwargs), request.user)

    def get_list_filter(self, request: HttpRequest) -> Any:
        """Relation filters offer only rows the user may read."""
        scoped: list[Any] = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str):
                try:
                    field = self.model._meta.get_field(entry)
                except Exception:
                    field = None
                if field is not None and field.is_relation:
                    entry = (entry, ScopedRelatedFieldListFilter)
            scoped.append(entry)
        return scoped

    # -- writes

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.check_save(request, obj, change, getattr(form, "fields", None))
        super().save_model(request, obj, form, change)

    def check_save(self, request: HttpRequest, obj: Any, change: bool, fields: Any = None) -> None:
        """The scope of a write: an existing row the user may change, a new one in their
        organisation (raises :class:`~organisations.authz.OutOfScope`)."""
        if change:
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            if stored is None:
                raise authz.OutOfScope("no such row")
            self.check_row_editable(request, stored)
        elif is_owned(type(obj)):
            obj.organisation_id = authz.organisation_for_new(request.user, obj.organisation_id)
        elif not self._may_create(request):
            raise authz.OutOfScope("you may not create this")
        if change or not is_owned(type(obj)):
            for org_id in linked_organisations(obj, fields).values():
                principal = authz.principal_for(request.user)
                if not principal.is_platform_admin and org_id != principal.organisation_id:
                    raise authz.OutOfScope("a link to another organisation's data")

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.check_row_editable(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        allowed = self.editable_queryset(request, queryset)
        if allowed.count() != queryset.count():
            raise PermissionDenied
        super().delete_queryset(request, queryset)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if change:
            self.check_row_editable(request, form.instance)
        super().save_formset(request, form, formset, change)


class ScopedInlineMixin(ScopedMixin):
    """Inline rows: the rows read are scoped, and they change only with a parent the user may
    change."""

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("form", _inline_form(getattr(self, "form", forms.ModelForm)))
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        _with_user(formset.form, request.user)
        return formset

    def _parent_changeable(self, request: HttpRequest, obj: Any) -> bool:
        return obj is None or authz.can_change(request.user, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_use_model(request) and super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            self._may_create(request)
            and self._parent_changeable(request, obj)
            and super().has_add_permission(request, obj)  # type: ignore[misc]
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            self._may_use_model(request)
            and self._parent_changeable(request, obj)
            and super().has_change_permission(request, obj)  # type: ignore[misc]
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            self._may_use_model(request)
            and self._parent_changeable(request, obj)
            and super().has_delete_permission(request, obj)  # type: ignore[misc]
        )


def _inline_form(form: type[forms.ModelForm]) -> type[forms.ModelForm]:
    if issubclass(form, ScopedModelForm):
        return form
    return type(form.__name__, (ScopedModelForm, form), {"__module__": form.__module__})


class ScopedTabularInline(ScopedInlineMixin, admin.TabularInline):
    form = ScopedModelForm


class ScopedStackedInline(ScopedInlineMixin, admin.StackedInline):
    form = ScopedModelForm
