from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .services import apikey_authenticate


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`, or the `apikey: <key>` header Powabase clients send."""

    def authenticate(self, request):
        raw_key = self._read_key(request)
        if raw_key is None:
            return None

        api_key = apikey_authenticate(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or revoked.")
        return (api_key.owner, api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'

    @staticmethod
    def _read_key(request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
            raise exceptions.AuthenticationFailed(
                "The Authorization header must be 'Bearer <api key>'."
            )

        value = request.META.get("HTTP_APIKEY", "").strip()
        return value or None


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Document ApiKeyAuthentication as two alternatives: a Bearer token or an `apikey` header."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = ["bearerAuth", "apikeyAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"bearerAuth": []}, {"apikeyAuth": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "pb_<lookup>_<secret>",
             "description": "`Authorization: Bearer <api key>`."},
            {"type": "apiKey", "in": "header", "name": "apikey",
             "description": "The API key alone in an `apikey` header, as Powabase clients send it."},
        ]


class StaffSessionScheme(OpenApiAuthenticationExtension):
    """Document the staff pages' login session, accepted where a staff page reads the API."""

    target_class = "orchestrations.views.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
                "description": "An active staff user's admin login session (GET requests only)."}
