import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

from .api import error_body

logger = logging.getLogger(__name__)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


class ApiErrorMiddleware:
    """Keep errors under /api/ in the JSON error shape, and reject large bodies early.

    The body limit is checked against Content-Length before any view or parser
    reads the body, so an oversized request costs no parsing.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _is_api(request):
            too_large = self._reject_large_body(request)
            if too_large is not None:
                return too_large
        return self.get_response(request)

    def _reject_large_body(self, request):
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return JsonResponse(
                error_body("The Content-Length header is not a number.", "bad_request"), status=400
            )

        limit = settings.POWABASE_MAX_BODY_BYTES
        if length <= limit:
            return None
        return JsonResponse(
            error_body(
                f"The request body is {length} bytes; the limit is {limit} bytes.",
                "payload_too_large",
            ),
            status=413,
        )

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning("database unavailable: %s", exception.__class__.__name__)
            body = error_body("The database is unavailable; try again shortly.", "service_unavailable")
            if _is_api(request):
                return JsonResponse(body, status=503, headers={"Retry-After": "5"})
            return HttpResponse(body["error"], status=503, content_type="text/plain",
                                headers={"Retry-After": "5"})

        if not _is_api(request):
            return None
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return JsonResponse(error_body("Internal server error.", "internal_error"), status=500)
