"""The flow editor's pages and JSON endpoints. Everything about flows (models, validation,
versions, publishing, the engine) is the flows app's: this module only parses requests and
calls it. Only the flows of the user's organisation (``Scope.flows``, from
``organisations.authz``) are listed, opened, validated, saved, published or tested; another
organisation's flow is "not found"."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_POST

from channels_inbound.models import Endpoint
from configuration.models import Queue
from flows import engine
from flows.actions import (
    FlowNotDraft,
    FlowValidationError,
    do_bind_flow,
    do_create_flow_version,
    do_publish_flow_version,
    do_unbind_flow,
    validation_problems,
)
from flows.labels import FIELD_LABELS, NODE_TYPE_LABELS, WEEKDAY_LABELS
from flows.models import Flow, FlowVersion
from flows.problems import as_json, describe
from flows.schema import NODE_SCHEMAS, Problem
from interactions.channels import Channel
from organisations import authz
from organisations.models import OrganisationRequired

from .access import Scope
from .models import SupervisorAction
from .periods import PARIS
from .views import supervisor_required

MAX_GRAPH_BYTES = 256 * 1024
MAX_TEST_INPUTS = 50


def _may_edit(request: HttpRequest) -> None:
    if not request.user.has_perm("flows.change_flowversion") and not request.user.has_perm(
        "configuration.change_queue"
    ):
        raise PermissionDenied


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > MAX_GRAPH_BYTES:
        raise ValueError("too large")
    data = json.loads(request.body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("an object is expected")
    return data


def _version_dict(v: FlowVersion) -> dict[str, Any]:
    return {
        "id": v.pk,
        "number": v.number,
        "status": v.status,
        "status_label": str(v.get_status_display()),
        "note": v.note,
        "created_at": v.created_at.isoformat(),
        "created_by": str(v.created_by or ""),
        "published_at": v.published_at.isoformat() if v.published_at else None,
    }


def _audit(request: HttpRequest, flow: Flow, what: str, version: FlowVersion) -> None:
    SupervisorAction.objects.create(
        actor_id=request.user.pk,
        kind=SupervisorAction.Kind.FLOW,
        at=timezone.now(),
        details={"flow": flow.pk, "action": what, "version": version.number},
    )


@supervisor_required
def flow_list(request: HttpRequest, scope: Scope) -> HttpResponse:
    if request.method == "POST":
        _may_edit(request)
        if scope.sees_nothing:
            raise PermissionDenied
        name = (request.POST.get("name") or "").strip()[:100]
        try:
            organisation_id = authz.organisation_for_new(request.user, scope.organisation_id)
        except OrganisationRequired:
            organisation_id = None
        if organisation_id is None:
            messages.error(request, _("Choose the organisation of the new flow."))
        elif not name:
            messages.error(request, _("Give the flow a name."))
        elif Flow.objects.filter(name=name, organisation_id=organisation_id).exists():
            messages.error(request, _("A flow with this name already exists."))
        else:
            flow = Flow.objects.create(name=name, organisation_id=organisation_id)
            return redirect("supervision:flow-editor", flow_id=flow.pk)
    flows = (
        scope.flows()
        .select_related("published_version")
        .prefetch_related("bindings__endpoint")
        .order_by("name")
    )
    return render(request, "supervision/flows.html", {"flows": flows})


@supervisor_required
def flow_editor(request: HttpRequest, scope: Scope, flow_id: int) -> HttpResponse:
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    versions = list(flow.versions.select_related("created_by").order_by("-number"))
    current = next((v for v in versions if v.status == FlowVersion.Status.DRAFT), None) or (
        flow.published_version
    )
    graph = current.graph if current else {"start": "", "language": "fr", "nodes": {}}
    editor = {
        "flow": {"id": flow.pk, "name": flow.name},
        "graph": graph,
        "editing": _version_dict(current) if current else None,
        "versions": [_version_dict(v) for v in versions],
        "queues": list(
            Queue.objects.filter(organisation_id=flow.organisation_id)
            .order_by("name", "code")
            .values("code", "name")
        ),
        "node_types": sorted(NODE_SCHEMAS),
        "urls": {
            "validate": request.build_absolute_uri(f"/supervision/flows/{flow.pk}/validate/"),
            "save": f"/supervision/flows/{flow.pk}/versions/",
            "test": f"/supervision/flows/{flow.pk}/test/",
        },
    }
    return render(
        request,
        "supervision/flow_editor.html",
        {
            "flow": flow,
            "versions": versions,
            "editor": editor,
            "editor_labels": editor_labels(),
            "now": _local_now(),
            "endpoints": _flow_endpoints(flow),
        },
    )


# The channels whose contacts a flow talks to first (an SVI for calls, a bot for chats).
FLOW_CHANNELS = (Channel.VOICE.value, Channel.CHAT.value)


def _flow_endpoints(flow: Flow) -> list[Endpoint]:
    """The organisation's numbers and widgets a flow can answer, with the flow each runs."""
    return list(
        Endpoint.objects.filter(organisation_id=flow.organisation_id, channel__in=FLOW_CHANNELS)
        .annotate(
            bound_flow_id=F("flow_binding__flow_id"), bound_flow_name=F("flow_binding__flow__name")
        )
        .order_by("channel", "name")
    )


@require_POST
@supervisor_required
def flow_bindings(request: HttpRequest, scope: Scope, flow_id: int) -> HttpResponse:
    """Attach this flow to one of its organisation's numbers or widgets (it replaces the flow
    that endpoint ran), or detach it (the endpoint's contacts then go straight to its queue)."""
    _may_edit(request)
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    action = request.POST.get("action")
    endpoint = Endpoint.objects.filter(
        pk=_int(request.POST.get("endpoint")) or 0,
        organisation_id=flow.organisation_id,
        channel__in=FLOW_CHANNELS,
    ).first()
    if endpoint is None or action not in ("attach", "detach"):
        messages.error(request, _("Choose one of the numbers or widgets listed."))
        return redirect("supervision:flow-editor", flow_id=flow.pk)
    try:
        if action == "attach":
            do_bind_flow(flow=flow, endpoint=endpoint, actor=request.user)
            if flow.published_version_id is None:
                messages.warning(
                    request,
                    _(
                        "“%(endpoint)s” will run this flow once a version is published; until"
                        " then its contacts go straight to its queue."
                    )
                    % {"endpoint": endpoint.name},
                )
            messages.success(
                request,
                _("“%(endpoint)s” now runs the flow “%(flow)s”.")
                % {"endpoint": endpoint.name, "flow": flow.name},
            )
        else:
            do_unbind_flow(flow=flow, endpoint=endpoint, actor=request.user)
            messages.success(
                request,
                _("“%(endpoint)s” no longer runs the flow “%(flow)s”.")
                % {"endpoint": endpoint.name, "flow": flow.name},
            )
    except authz.OutOfScope as exc:
        raise PermissionDenied from exc
    SupervisorAction.objects.create(
        actor_id=request.user.pk,
        kind=SupervisorAction.Kind.FLOW,
        at=timezone.now(),
        details={"flow": flow.pk, "action": action, "endpoint": endpoint.pk},
    )
    return redirect("supervision:flow-editor", flow_id=flow.pk)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# Time zones of France's territories (the calendar's zone: opening hours are local times).
TIMEZONES = (
    "Europe/Paris",
    "America/Guadeloupe",
    "America/Martinique",
    "America/Cayenne",
    "Indian/Reunion",
    "Indian/Mayotte",
    "America/Miquelon",
    "Pacific/Noumea",
    "Pacific/Tahiti",
    "Pacific/Wallis",
)


def editor_labels() -> dict[str, Any]:
    """The words of the editor's script, in the page's language."""
    zone_names = {
        "Europe/Paris": _("Metropolitan France"),
        "America/Guadeloupe": _("Guadeloupe, Saint-Barthélemy, Saint-Martin"),
        "America/Martinique": _("Martinique"),
        "America/Cayenne": _("French Guiana"),
        "Indian/Reunion": _("La Réunion"),
        "Indian/Mayotte": _("Mayotte"),
        "America/Miquelon": _("Saint-Pierre-et-Miquelon"),
        "Pacific/Noumea": _("New Caledonia"),
        "Pacific/Tahiti": _("French Polynesia"),
        "Pacific/Wallis": _("Wallis and Futuna"),
    }
    return {
        "types": {k: str(v) for k, v in NODE_TYPE_LABELS.items()},
        "types_short": {
            "message": _("message"),
            "menu": _("menu"),
            "business_hours": _("hours"),
            "set": _("settings"),
            "queue": pgettext("flow diagram node", "queue"),
            "voicemail": pgettext("flow diagram node", "voicemail"),
            "callback": _("callback"),
            "transfer": _("transfer"),
            "hangup": _("hang up"),
            "survey": _("survey"),
        },
        "fields": {k: str(v) for k, v in FIELD_LABELS.items()},
        # the diagram's arrows (menu choices show their key)
        "edges": {
            "next": pgettext("flow diagram arrow", "then"),
            "open": pgettext("flow diagram arrow", "open"),
            "closed": pgettext("flow diagram arrow", "closed"),
            "holiday": pgettext("flow diagram arrow", "holiday"),
            "default": pgettext("flow diagram arrow", "otherwise"),
            "fallback": pgettext("flow diagram arrow", "no number"),
        },
        "weekdays": {k: str(v) for k, v in WEEKDAY_LABELS.items()},
        "timezones": [(zone, f"{zone_names[zone]} ({zone})") for zone in TIMEZONES],
        "subdivisions": [
            ("", _("Metropolitan France")),
            ("6AE", _("Alsace (Bas-Rhin, Haut-Rhin)")),
            ("57", _("Moselle")),
            ("971", _("Guadeloupe")),
            ("972", _("Martinique")),
            ("973", _("French Guiana")),
            ("974", _("La Réunion")),
            ("976", _("Mayotte")),
            ("BL", _("Saint-Barthélemy")),
            ("MF", _("Saint-Martin")),
            ("PM", _("Saint-Pierre-et-Miquelon")),
            ("NC", _("New Caledonia")),
            ("PF", _("French Polynesia")),
            ("WF", _("Wallis and Futuna")),
        ],
        "cal_help": _(
            "Opening hours of each day, for example 08:30-12:30, 13:30-17:00 (08h30 also works);"
            " leave a day empty when it is closed."
        ),
        "cal_format": _("write the hours as 08:30-12:30, 13:30-17:00."),
        "cal_order": _("%(start)s–%(end)s ends before it starts."),
        "cal_timezone": _("Time zone"),
        "cal_holidays": _("Closed on public holidays"),
        "cal_subdiv": _("Public holidays of"),
        "cal_closed": _("Closed dates (closures of the service)"),
        "cal_open": _("Exceptional openings"),
        "cal_open_hours": _("Hours on %(date)s"),
        "cal_date": _("Date"),
        "cal_add_date": _("Add this date"),
        "cal_no_date": _("No date."),
        "cal_date_missing": _("Choose a date first."),
        "cal_date_twice": _("This date is already in the list."),
        "remove": _("Remove"),
        "survey_prompt": _(
            "Are you satisfied with this call? Press 1 (not at all) to 5 (very satisfied)."
        ),
        "survey_thanks": _("Thank you for your answer."),
        "node_error_count": _("%(id)s: %(first)s"),
        "id_empty": _("The node's name cannot be empty."),
        "none": _("—"),
        "default_queue": _("the number's own queue"),
        "add_option": _("Add a choice"),
        "remove_option": _("Remove this choice"),
        "delete_node": _("Delete this node"),
        "select_node": _("Edit"),
        "no_node": _("Select a node in the list to edit it."),
        "errors_on_node": _("Errors on this node"),
        "general_errors": _("Errors in the flow"),
        "valid": _("No error: this flow can be published."),
        "saved": _("Draft saved as version %(n)s."),
        "save_failed": _("The draft could not be saved."),
        "id_taken": _("This identifier is already used."),
        "id_invalid": _("Use letters, digits, “.”, “-” and “_”."),
        "invalid_json": _("This is not valid JSON."),
        "start": _("start"),
        "test_says": _("Says"),
        "test_asks": _("Asks"),
        "test_input": _("Caller presses"),
        "test_queue": _("Queued in"),
        "test_voicemail": _("Voicemail for"),
        "test_callback": _("Callback request for"),
        "test_transfer": _("Transferred to"),
        "test_hangup": _("Hangs up"),
        "test_waiting": _("The flow now waits for a key."),
        "test_path": _("Path"),
        "confirm_delete": _("Delete node %(id)s?"),
    }


def _local_now() -> str:
    return timezone.now().astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


@require_POST
@supervisor_required
def flow_validate(request: HttpRequest, scope: Scope, flow_id: int) -> JsonResponse:
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    try:
        graph = _json_body(request).get("graph")
    except ValueError:
        return JsonResponse({"errors": [_("The flow could not be read.")]}, status=400)
    return JsonResponse(_problems_answer(graph, flow))


@require_POST
@supervisor_required
def flow_save(request: HttpRequest, scope: Scope, flow_id: int) -> JsonResponse:
    """Save the editor's graph as a new draft version (kept even with errors: publishing
    refuses it until they are fixed)."""
    _may_edit(request)
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    try:
        data = _json_body(request)
    except ValueError:
        return JsonResponse({"errors": [_("The flow could not be read.")]}, status=400)
    graph = data.get("graph")
    if not isinstance(graph, dict):
        return JsonResponse({"errors": [_("The flow could not be read.")]}, status=400)
    note = str(data.get("note") or "")[:200]
    with transaction.atomic():
        # One draft at a time: the previous draft is replaced by this one.
        flow.versions.filter(status=FlowVersion.Status.DRAFT).delete()
        version = do_create_flow_version(flow=flow, graph=graph, note=note, actor=request.user)
    # The editor reloads the page once saved: the message is shown (and focused) there.
    messages.success(request, _("Draft saved as version %(n)s.") % {"n": version.number})
    return JsonResponse(
        {
            "version": _version_dict(version),
            **_problems_answer(graph, flow),
            "versions": [_version_dict(v) for v in flow.versions.order_by("-number")],
        }
    )


def _problems_answer(graph: Any, flow: Flow) -> dict[str, Any]:
    """The graph's problems for the editor: ``errors`` in words, ``problems`` with the node(s)
    each is about (and its technical line)."""
    found = validation_problems(graph, organisation_id=flow.organisation_id)
    return {"errors": [describe(p) for p in found], "problems": as_json(found)}


MAX_PROBLEMS_SHOWN = 10


def _answer(
    request: HttpRequest, ok: bool, message: str, problems: list[Problem] | None = None
) -> Any:
    words = [describe(p) for p in problems or []]
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"ok": ok, "message": message, "errors": words})
    (messages.success if ok else messages.error)(request, message)
    for text in words[:MAX_PROBLEMS_SHOWN]:
        messages.error(request, text)
    return None


@require_POST
@supervisor_required
def flow_publish(request: HttpRequest, scope: Scope, flow_id: int, version_id: int) -> HttpResponse:
    _may_edit(request)
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    version = get_object_or_404(FlowVersion, pk=version_id, flow=flow)
    try:
        published = do_publish_flow_version(version=version, actor=request.user)
    except FlowValidationError as exc:
        answer = _answer(
            request, False, _("This version has errors: it cannot be published."), exc.problems
        )
    except FlowNotDraft:
        answer = _answer(request, False, _("Only a draft can be published."))
    else:
        _audit(request, flow, "publish", published)
        answer = _answer(
            request,
            True,
            _("Version %(n)s is published: the next calls follow it.") % {"n": published.number},
        )
    return answer or redirect("supervision:flow-editor", flow_id=flow.pk)


@require_POST
@supervisor_required
def flow_rollback(
    request: HttpRequest, scope: Scope, flow_id: int, version_id: int
) -> HttpResponse:
    """Publish again an earlier version, as a new version (the history stays whole)."""
    _may_edit(request)
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    old = get_object_or_404(FlowVersion, pk=version_id, flow=flow)
    try:
        with transaction.atomic():
            flow.versions.filter(status=FlowVersion.Status.DRAFT).delete()
            copy = do_create_flow_version(
                flow=flow,
                graph=old.graph,
                note=_("rollback to version %(n)s") % {"n": old.number},
                actor=request.user,
            )
            published = do_publish_flow_version(version=copy, actor=request.user)
    except FlowValidationError as exc:
        answer = _answer(
            request, False, _("This version has errors: it cannot be published."), exc.problems
        )
    else:
        _audit(request, flow, "rollback", published)
        answer = _answer(
            request,
            True,
            _("Version %(old)s is published again as version %(n)s.")
            % {"old": old.number, "n": published.number},
        )
    return answer or redirect("supervision:flow-editor", flow_id=flow.pk)


def _describe(action: engine.Action) -> dict[str, Any]:
    if isinstance(action, engine.Say):
        return {"kind": "say", "text": action.text or action.audio_url}
    if isinstance(action, engine.Ask):
        return {
            "kind": "ask",
            "node": action.node_id,
            "text": action.prompt.text or action.prompt.audio_url,
            "options": [{"key": o.key, "label": o.label} for o in action.options],
        }
    if isinstance(action, engine.Enqueue):
        return {
            "kind": "queue",
            "queue": action.queue,
            "skills": action.skills,
            "priority": action.priority,
            "language": action.language,
        }
    if isinstance(action, engine.Voicemail):
        return {"kind": "voicemail", "queue": action.queue}
    if isinstance(action, engine.Callback):
        return {"kind": "callback", "queue": action.queue}
    if isinstance(action, engine.Transfer):
        return {"kind": "transfer", "number": action.number}
    return {"kind": "hangup"}


def run_test(
    graph: dict[str, Any], inputs: list[str], at: datetime, caller_known: bool
) -> dict[str, Any]:
    """Walk a flow with chosen answers, as a caller would (the flows engine, unchanged)."""
    context = engine.Context(now=at, caller_known=caller_known)
    transcript: list[dict[str, Any]] = []
    step = engine.start(graph, context=context)
    transcript += [_describe(a) for a in step.actions]
    used = 0
    while step.waiting and used < len(inputs):
        answer = inputs[used]
        used += 1
        transcript.append({"kind": "input", "text": answer or "∅"})
        step = engine.resume(graph, session=step.session, user_input=answer, context=context)
        transcript += [_describe(a) for a in step.actions]
    return {
        "transcript": transcript,
        "waiting": step.waiting,
        "path": list(step.session.path),
        "outcome": _describe(step.outcome) if step.outcome else None,
        "unused_inputs": inputs[used:],
    }


@require_POST
@supervisor_required
def flow_test(request: HttpRequest, scope: Scope, flow_id: int) -> JsonResponse:
    flow = get_object_or_404(scope.flows(), pk=flow_id)
    try:
        data = _json_body(request)
    except ValueError:
        return JsonResponse({"errors": [_("The flow could not be read.")]}, status=400)
    graph = data.get("graph")
    answer = _problems_answer(graph, flow)
    if answer["errors"]:
        return JsonResponse(answer, status=400)
    assert isinstance(graph, dict)
    inputs = [str(x)[:5] for x in (data.get("inputs") or [])][:MAX_TEST_INPUTS]
    try:
        at = datetime.fromisoformat(str(data.get("at") or _local_now()))
    except ValueError:
        return JsonResponse({"errors": [_("Give a valid date and time.")]}, status=400)
    if at.tzinfo is None:
        at = at.replace(tzinfo=PARIS)
    try:
        result = run_test(graph, inputs, at, bool(data.get("caller_known", True)))
    except engine.FlowError as exc:
        return JsonResponse({"errors": [str(exc)]}, status=400)
    return JsonResponse({"errors": [], **result})
