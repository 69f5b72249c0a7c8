"""REST API for citizens: list/search, create, correct, add identities, merge."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from kernel.audit import AccessAction, log_access
from organisations import authz
from organisations.api_scope import ScopedViewSetMixin, audit_user, int_param, request_user

from .actions import (
    CONTACT_FIELDS,
    do_add_identity,
    do_create_contact,
    do_merge_contacts,
    do_update_contact,
    normalize_identity,
)
from .models import Contact, ContactIdentity, IdentityKind


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactIdentity
        fields = ["id", "kind", "value", "verified"]
        read_only_fields = ["id", "verified"]


class ContactSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "display_name",
            "preferred_language",
            "notes",
            "identities",
            "merged_into",
            "created_at",
        ]
        read_only_fields = ["id", "merged_into", "created_at"]


class MergeSerializer(serializers.Serializer):
    source = serializers.PrimaryKeyRelatedField(  # type: ignore[assignment]
        queryset=Contact.objects.none()
    )

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # Only a record the caller may change (never another organisation's).
        fields["source"].queryset = authz.editable(  # type: ignore[attr-defined]
            request_user(self), Contact.objects.filter(merged_into=None)
        )
        return fields


@extend_schema(
    parameters=[
        OpenApiParameter("phone", str, description="Find by phone number (any French format)."),
        OpenApiParameter("email", str, description="Find by e-mail address."),
    ]
)
class ContactViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    serializer_class = ContactSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Contact]:
        queryset = self.scoped(Contact.objects.prefetch_related("identities").order_by("-id"))
        if self.action == "list":
            queryset = queryset.filter(merged_into=None)
            for kind in (IdentityKind.PHONE, IdentityKind.EMAIL):
                raw = self.request.query_params.get(kind)
                if raw:
                    value = normalize_identity(kind, raw)
                    queryset = queryset.filter(identities__kind=kind, identities__value=value)
        return queryset

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        contact = self.get_object()
        log_access(request.user, AccessAction.VIEW_CITIZEN, contact, via="api")
        return Response(self.get_serializer(contact).data)

    def perform_create(self, serializer: Any) -> None:
        data = {k: v for k, v in serializer.validated_data.items() if k in CONTACT_FIELDS}
        serializer.instance = do_create_contact(
            actor=self.request.user,
            organisation_id=int_param(self.request, "organisation"),  # platform administrators
            **data,
        )

    def perform_update(self, serializer: Any) -> None:
        contact = serializer.instance
        self.check_change(contact)
        data = {k: v for k, v in serializer.validated_data.items() if k in CONTACT_FIELDS}
        serializer.instance = do_update_contact(
            actor=self.request.user, contact=contact, changes=data
        )

    @extend_schema(request=IdentitySerializer, responses={201: IdentitySerializer})
    @action(detail=True, methods=["post"])
    def identities(self, request: Request, pk: str | None = None) -> Response:
        contact = self.get_object()
        self.check_change(contact)
        serializer = IdentitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity = do_add_identity(
            contact=contact,
            kind=serializer.validated_data["kind"],
            raw=serializer.validated_data["value"],
        )
        return Response(IdentitySerializer(identity).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MergeSerializer, responses={200: ContactSerializer})
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        """Merge the citizen given as ``source`` into this one (history is kept)."""
        if not request.user.has_perm("contacts.add_contactmerge"):
            self.permission_denied(request, message="Merging citizens is for supervisors.")
        target = self.get_object()
        self.check_change(target)
        serializer = MergeSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        do_merge_contacts(
            target=target,
            source=serializer.validated_data["source"],
            actor=audit_user(request.user),
        )
        target.refresh_from_db()
        return Response(ContactSerializer(target).data)
