import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from .api import error_body

logger = logging.getLogger(__name__)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _too_large(length: int | None, limit: int) -> JsonResponse:
    size = f"{length} bytes" if length is not None else f"more than {limit} bytes"
    return JsonResponse(
        error_body(f"The request body is {size}; the limit is {limit} bytes.", "payload_too_large"),
        status=413,
    )


class ApiErrorMiddleware:
    """Keep errors under /api/ in the JSON error shape, and reject large bodies early.

    The body limit is checked against Content-Length before any view or parser
    reads the body, so an oversized request costs no parsing. A chunked body
    has no Content-Length: it is read up to the limit here and handed on with
    its length set, because DRF treats a request without Content-Length as
    having no body at all.
    """

    # Both, so under ASGI the whole middleware chain stays async and a request
    # hops to a thread once, for its view, rather than at every sync layer.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        if _is_api(request):
            too_large = self._reject_large_body(request)
            if too_large is not None:
                return too_large
        return self.get_response(request)

    async def __acall__(self, request):
        if _is_api(request):
            # The body is already buffered by Django's ASGI handler, so
            # reading a chunked one here does not block on the network.
            too_large = self._reject_large_body(request)
            if too_large is not None:
                return too_large
        return await self.get_response(request)

    def _reject_large_body(self, request):
        limit = settings.POWABASE_MAX_BODY_BYTES
        raw_length = request.META.get("CONTENT_LENGTH")
        if not raw_length:
            if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                return self._read_chunked_body(request, limit)
            return None

        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            return JsonResponse(
                error_body("The Content-Length header is not a number.", "bad_request"), status=400
            )
        if length <= limit:
            return None
        return _too_large(length, limit)

    @staticmethod
    def _read_chunked_body(request, limit: int):
        body = request.read(limit + 1)
        if len(body) > limit:
            return _too_large(None, limit)
        # DRF reads a body only when Content-Length is set, and then through
        # HttpRequest.body, which returns this cached copy.
        request._body = body
        request.META["CONTENT_LENGTH"] = str(len(body))
        return None

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
        if isinstance(exception, RequestDataTooBig):
            return _too_large(None, settings.POWABASE_MAX_BODY_BYTES)
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return JsonResponse(error_body("Internal server error.", "internal_error"), status=500)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static file serving, as async middleware.

    WhiteNoiseMiddleware 6.x is sync only. Under ASGI that put two extra
    thread hops into every request (async to sync to async). This keeps its
    file lookup and responses and only changes how the next layer is called.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request):
        if self.autorefresh:
            # Development only: looks the file up on disk, so off the event loop.
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(
                request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
