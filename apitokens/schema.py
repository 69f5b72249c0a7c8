"""The OpenAPI description of the token authentication (imported in AppConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class APITokenScheme(OpenApiAuthenticationExtension):
    target_class = "apitokens.authentication.APITokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal token (POST /api/v1/auth/token/) or a service token "
            "(made in the admin): `Authorization: Bearer <token>`.",
        }
