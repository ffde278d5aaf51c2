from django.http import JsonResponse
from django.views.defaults import page_not_found, server_error

from .api import error_body


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
    return JsonResponse({"status": "ok"})
