"""POST /api/v1/auth/token/ (a personal token) and DELETE (give up the presented token)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.second_factor import session_passed_second_factor

from .actions import SecondFactorNeeded, do_issue_personal_token, do_revoke_presented_token
from .actions import needs_second_factor as _needs_second_factor
from .models import PersonalToken, ServiceToken


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(required=False, allow_blank=True)
    password = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, style={"input_type": "password"}
    )
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The second-factor (TOTP) code, for accounts that need one.",
    )


TOKEN_RESPONSE = inline_serializer(
    "PersonalTokenResponse",
    {
        "token": serializers.CharField(),
        "token_type": serializers.CharField(),
        "prefix": serializers.CharField(),
        "expires_at": serializers.DateTimeField(),
    },
)


def _verify_code(user: Any, code: str) -> bool:
    """Check a TOTP code against the user's confirmed devices (django-otp's throttling)."""
    code = code.replace(" ", "")
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        allowed, _details = device.verify_is_allowed()
        if not allowed:
            raise ValidationError(
                {"otp": [_("Too many wrong codes: wait a moment before trying again.")]}
            )
        if device.verify_token(code):
            return True
    return False


class TokenView(APIView):
    """Personal API tokens.

    POST with ``username``, ``password`` and, for an account that needs a second factor
    (supervisors, administrators, teleworkers, anyone who enrolled a device), ``otp``, the
    code of their authenticator app; or POST with nothing from a browser session that has
    passed the second factor. The token expires after ``API_TOKEN_TTL_SECONDS`` and is revoked
    at logout, when the session ends for inactivity and when the password changes.
    DELETE revokes the token presented in the ``Authorization`` header.
    """

    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(request=TokenRequestSerializer, responses={201: TOKEN_RESPONSE})
    def post(self, request: Request) -> Response:
        if request.auth is not None:
            raise PermissionDenied(
                _("A token cannot make another token: log in again to get a new one.")
            )
        if request.user.is_authenticated:
            user = request.user
            second_factor = session_passed_second_factor(user, request.session)
            if not second_factor and _needs_second_factor(user):
                raise PermissionDenied(_("A second factor is needed."))
        else:
            user, second_factor = self._from_credentials(request)
        try:
            token, raw = do_issue_personal_token(user, second_factor=second_factor)
        except SecondFactorNeeded as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(
            {
                "token": raw,
                "token_type": "Bearer",
                "prefix": token.prefix,
                "expires_at": token.expires_at,
            },
            status=status.HTTP_201_CREATED,
        )

    def _from_credentials(self, request: Request) -> tuple[Any, bool]:
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data.get("username", "")
        password = data.validated_data.get("password", "")
        if not username or not password:
            raise ValidationError(
                {"non_field_errors": [_("Give a username and a password.")]}, code="required"
            )
        http_request = request._request
        user = authenticate(request=http_request, username=username, password=password)
        if user is None:
            if getattr(http_request, "axes_locked_out", False):
                raise AuthenticationFailed(
                    _("Too many failed attempts: this account is locked for a while.")
                )
            raise AuthenticationFailed(_("Unable to log in with the credentials provided."))
        if not _needs_second_factor(user):
            return user, False
        code = data.validated_data.get("otp", "").strip()
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise PermissionDenied(
                _(
                    "This account needs a second factor: enrol an authenticator app by "
                    "logging in to the console first."
                )
            )
        if not code:
            raise AuthenticationFailed(
                _("This account needs a second factor: give the code of your app in “otp”.")
            )
        if not _verify_code(user, code):
            raise AuthenticationFailed(
                _("This code is not valid. Check your device's clock and try again.")
            )
        return user, True

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        token = request.auth
        if not isinstance(token, PersonalToken | ServiceToken):
            raise ValidationError(
                {
                    "non_field_errors": [
                        _("Present the token to revoke in the Authorization header.")
                    ]
                }
            )
        do_revoke_presented_token(request.user, token)
        return Response(status=status.HTTP_204_NO_CONTENT)
