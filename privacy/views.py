"""The data-protection officer's pages: find a citizen, see and export their data, rectify,
erase; the retention durations; the access log. Officers of an organisation and platform
administrators only (anyone else: 403); another organisation's citizen: 404."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts.actions import ContactError
from contacts.models import Contact
from kernel.audit import AccessAction, log_access
from organisations import authz
from organisations.models import Organisation

from . import subjects
from .models import AccessLog, DataClass, RetentionPolicy
from .retention import default_days, durations

View = Callable[..., HttpResponse]


def officer_required(view: View) -> View:
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not authz.principal_for(request.user).is_dpo:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _citizen(request: HttpRequest, contact_id: int) -> Contact:
    return get_object_or_404(
        subjects.citizens(request.user).select_related("organisation"), pk=contact_id
    )


@officer_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:254]
    found = subjects.search(request.user, query) if query.strip() else []
    return render(request, "privacy/search.html", {"q": query, "found": found})


@officer_required
@require_GET
def citizen(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _citizen(request, contact_id)
    log_access(request.user, AccessAction.VIEW_CITIZEN, contact)
    data = subjects.export_data(request.user, contact)
    return render(
        request,
        "privacy/citizen.html",
        {
            "contact": contact,
            "data": data,
            "open_count": subjects.open_interactions(contact),
            "identities": contact.identities.order_by("kind", "value"),
            "languages": _languages(),
        },
    )


def _languages() -> list[tuple[str, Any]]:
    from django.conf import settings

    return list(settings.LANGUAGES)


@officer_required
@require_GET
def export(request: HttpRequest, contact_id: int) -> HttpResponse:
    """``?format=json`` (a download) or the readable page (default, printable)."""
    contact = _citizen(request, contact_id)
    fmt = request.GET.get("format", "html")
    if fmt not in ("json", "html"):
        return HttpResponse(_("Unknown format: choose json or html."), status=400)
    data = subjects.export_data(request.user, contact)
    subjects.log_export(request.user, contact, fmt)
    response: HttpResponse
    if fmt == "json":
        response = JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})
        response["Content-Disposition"] = f'attachment; filename="citizen-{contact.pk}.json"'
    else:
        response = render(request, "privacy/export.html", {"data": data, "contact": contact})
    response["Cache-Control"] = "private, no-store"
    return response


@officer_required
@require_POST
def rectify(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _citizen(request, contact_id)
    changes = {
        key: str(value).strip()
        for key, value in request.POST.items()
        if key in ("display_name", "preferred_language", "notes") or key.startswith("identity-")
    }
    if changes.get("preferred_language", contact.preferred_language) not in dict(_languages()):
        return HttpResponse(_("Unknown language."), status=400)
    try:
        changed = subjects.do_rectify(request.user, contact, changes)
    except ContactError as exc:
        return HttpResponse(str(exc), status=400)
    messages.success(
        request,
        _("Record corrected.") if changed else _("Nothing to correct: the values are the same."),
    )
    return redirect("privacy:citizen", contact_id=contact.pk)


@officer_required
@require_POST
def erase(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _citizen(request, contact_id)
    if request.POST.get("confirm") != "yes":
        return HttpResponse(_("Tick the confirmation box to erase this citizen."), status=400)
    try:
        subjects.do_erase(request.user, contact)
    except subjects.ErasureRefused as exc:
        return render(
            request,
            "privacy/refused.html",
            {"contact": contact, "reason": str(exc)},
            status=409,
        )
    messages.success(request, _("The citizen's personal data was erased."))
    return redirect("privacy:citizen", contact_id=contact.pk)


# --------------------------------------------------------------------------- retention


def _organisation(request: HttpRequest) -> Organisation:
    p = authz.principal_for(request.user)
    if p.is_platform_admin:
        org_id = request.GET.get("organisation") or request.POST.get("organisation")
        if org_id:
            if not str(org_id).isdigit():
                raise Http404
            return get_object_or_404(Organisation, pk=int(org_id))
        first = Organisation.objects.order_by("pk").first()
        if first is None:
            raise Http404
        return first
    return get_object_or_404(Organisation, pk=p.organisation_id)


@officer_required
@require_http_methods(["GET", "POST"])
def retention(request: HttpRequest) -> HttpResponse:
    org = _organisation(request)
    if request.method == "POST":
        errors = []
        for data_class in DataClass.values:
            raw = request.POST.get(data_class, "").strip()
            if not raw:
                continue
            if not raw.isdigit() or not 1 <= int(raw) <= 36500:
                errors.append(
                    _("%(class)s: a number of days between 1 and 36500.")
                    % {"class": DataClass(data_class).label}
                )
                continue
            RetentionPolicy.objects.update_or_create(
                organisation=org, data_class=data_class, defaults={"days": int(raw)}
            )
            log_access(
                request.user, AccessAction.RETENTION, org, data_class=data_class, days=int(raw)
            )
        if errors:
            return HttpResponse(" ".join(errors), status=400)
        messages.success(request, _("Retention durations saved."))
        return redirect(f"{request.path}?organisation={org.pk}")
    current = durations(org.pk)
    defaults = default_days()
    rows = [
        {"code": c, "label": label, "days": current[c], "default": defaults[c]}
        for c, label in DataClass.choices
    ]
    return render(request, "privacy/retention.html", {"organisation": org, "rows": rows})


# --------------------------------------------------------------------------- the access log

PAGE_SIZE = 100


def _day(raw: str | None, *, end: bool = False) -> datetime | None:
    if not raw:
        return None
    day = parse_date(raw)
    if day is None:
        raise ValueError(raw)
    moment = timezone.make_aware(datetime.combine(day, time.min))
    return moment + timedelta(days=1) if end else moment


@officer_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    rows = authz.dpo_rows(request.user, AccessLog)
    action = request.GET.get("action", "")
    if action and action not in AccessAction.values:
        return HttpResponse(_("Unknown action."), status=400)
    try:
        since, until = _day(request.GET.get("since")), _day(request.GET.get("until"), end=True)
    except ValueError:
        return HttpResponse(_("Dates are written YYYY-MM-DD."), status=400)
    actor = request.GET.get("actor", "").strip()
    object_type = request.GET.get("object_type", "").strip()
    object_id = request.GET.get("object_id", "").strip()
    if action:
        rows = rows.filter(action=action)
    if since:
        rows = rows.filter(at__gte=since)
    if until:
        rows = rows.filter(at__lt=until)
    if actor:
        rows = rows.filter(actor_name__icontains=actor)
    if object_type:
        rows = rows.filter(object_type=object_type)
    if object_id:
        rows = rows.filter(object_id=object_id)
    page = Paginator(rows.order_by("-at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page:
        entry.details_json = json.dumps(entry.details, ensure_ascii=False)[:500]  # type: ignore[attr-defined]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "privacy/audit.html",
        {
            "page": page,
            "actions": AccessAction.choices,
            "filters": {
                "action": action,
                "since": request.GET.get("since", ""),
                "until": request.GET.get("until", ""),
                "actor": actor,
                "object_type": object_type,
                "object_id": object_id,
            },
            "query": query.urlencode(),
        },
    )
