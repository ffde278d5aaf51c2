from django.http import JsonResponse
from django.views.defaults import page_not_found, server_error
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import viewsets
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny

from .api import SafeJSONParser, SafeJSONRenderer, error_body


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(f"No API endpoint at {request.path}.", "not_found"), status=404)
    return page_not_found(request, exception)


def internal_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("Internal server error.", "internal_error"), status=500)
    return server_error(request)


def bad_request(request, exception=None):
    return JsonResponse(error_body("The request is malformed.", "bad_request"), status=400)


def healthz(request):
    """Liveness, with the number of event streams this process has open."""
    from django_eventstream.views import get_listener_manager

    manager = get_listener_manager()
    with manager.lock:
        open_streams = sum(len(listeners) for listeners in manager.listeners_by_channel.values())
    return JsonResponse({"status": "ok", "open_streams": open_streams})


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's inspector without its list-action heuristic.

    By default it wraps the response of any `list` action in an array, but the
    list endpoints here return an object with the rows under a key.
    """

    def _is_list_view(self, serializer=None) -> bool:
        return False


class ApiViewSet(viewsets.ViewSet):
    """The base of the API's viewsets: JSON bodies through SafeJSONParser."""

    parser_classes = [SafeJSONParser]
    schema = ApiAutoSchema()


class PublicDocsMixin:
    """Readable by anyone without an API key; errors still come as JSON.

    The success response is negotiated as usual (YAML or JSON schema, HTML
    page), which the API's JSON-only negotiation would not allow.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    content_negotiation_class = DefaultContentNegotiation

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = SafeJSONRenderer()
        self.request.accepted_media_type = SafeJSONRenderer.media_type
        return response


class SchemaView(PublicDocsMixin, SpectacularAPIView):
    """The OpenAPI 3 schema: YAML by default, JSON with `?format=json`."""


class SwaggerView(PublicDocsMixin, SpectacularSwaggerView):
    """Swagger UI over the schema."""
