"""DRF glue shared by every API view: one error shape, JSON only."""

import logging
import uuid

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .config_rules import clean_config
from .errors import ServiceError, ValidationFailed

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.NotAuthenticated: "authentication_required",
    exceptions.AuthenticationFailed: "invalid_api_key",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.ParseError: "invalid_json",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_error",
    exceptions.NotFound: "not_found",
}


class JsonOnlyNegotiation(BaseContentNegotiation):
    """Always answer JSON, whatever the Accept header asks for.

    Streaming views return their own text/event-stream response, so a client
    that sends `Accept: text/event-stream` must not get 406 on the way there.
    """

    def select_parser(self, request, parsers):
        for parser in parsers:
            if parser.media_type == request.content_type.split(";")[0].strip():
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (JSONRenderer(), JSONRenderer.media_type)


def error_body(message: str, code: str, fields: dict | None = None) -> dict:
    body = {"error": message, "code": code}
    if fields:
        body["fields"] = fields
    return body


def _flatten_fields(detail) -> dict:
    if isinstance(detail, dict):
        fields = {}
        for name, problems in detail.items():
            if isinstance(problems, dict):
                for sub_name, sub_problems in _flatten_fields(problems).items():
                    fields[f"{name}.{sub_name}"] = sub_problems
            elif isinstance(problems, list):
                fields[name] = [str(p) for p in problems]
            else:
                fields[name] = [str(problems)]
        return fields
    if isinstance(detail, list):
        return {"non_field_errors": [str(p) for p in detail]}
    return {"non_field_errors": [str(detail)]}


def _validation_summary(fields: dict) -> str:
    first_name = next(iter(fields))
    first_problem = fields[first_name][0] if fields[first_name] else "is invalid"
    if first_name == "non_field_errors":
        return first_problem
    return f"{first_name}: {first_problem}"


def exception_handler(exc, context):
    """Render every API error as `{"error", "code", "fields"?}`."""
    if isinstance(exc, ServiceError):
        response = Response(error_body(exc.message, exc.code, exc.fields), status=exc.status)
        for name, value in exc.headers.items():
            response[name] = value
        return response

    if isinstance(exc, Http404):
        return Response(error_body("Not found.", "not_found"), status=status.HTTP_404_NOT_FOUND)

    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("The request body is larger than the allowed size.", "payload_too_large"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable while serving a request: %s", exc.__class__.__name__)
        return Response(
            error_body("The database is unavailable; try again shortly.", "service_unavailable"),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    if isinstance(exc, DatabaseError):
        logger.exception("database error while serving a request")
        return Response(
            error_body("The request could not be stored.", "internal_error"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        if isinstance(exc, exceptions.ValidationError):
            fields = _flatten_fields(exc.detail)
            body = error_body(_validation_summary(fields), "validation_error", fields)
        else:
            detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
            body = error_body(str(detail), code or str(exc.default_code))
        response = Response(body, status=exc.status_code)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait) + 1)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        return response

    return None



MAX_LIMIT = 100
DEFAULT_LIMIT = 50


class StrictSerializer(serializers.Serializer):
    """An input serializer that rejects unknown fields and non-object bodies.

    `aliases` maps other accepted spellings to a field name (Powabase's docs
    and its server disagree on several names).
    """

    aliases: dict[str, str] = {}
    ignored: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["The request body must be a JSON object."]}
            )
        data = dict(data)
        for alias, name in self.aliases.items():
            if alias in data:
                value = data.pop(alias)
                if name in data and data[name] != value:
                    raise serializers.ValidationError(
                        {alias: [f"conflicts with {name}; send one of them."]}
                    )
                data[name] = value
        unknown = sorted(set(data) - set(self.fields) - set(self.ignored))
        if unknown:
            raise serializers.ValidationError({name: ["is not a known field."] for name in unknown})
        for name in self.ignored:
            data.pop(name, None)
        return super().to_internal_value(data)


class ConfigField(serializers.JSONField):
    """A JSON object checked against a table of known keys and types."""

    def __init__(self, rules, **kwargs):
        self.rules = rules
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value is None:
            return {}
        try:
            return clean_config(value, self.rules)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


class ListParams:
    """`limit`, `offset`, `q`, `sort` and `order` of a list request, validated."""

    def __init__(self, request, *, sort_fields: tuple[str, ...], default_sort: str = "created_at"):
        query = request.query_params
        problems = {}
        self.limit = self._int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, problems)
        self.offset = self._int(query, "offset", 0, 0, 10_000_000, problems)
        self.q = query.get("q", "").strip()
        if "\x00" in self.q or len(self.q) > 200:
            problems["q"] = ["must be at most 200 characters without NUL characters."]
        self.sort = query.get("sort", default_sort)
        if self.sort not in sort_fields:
            problems["sort"] = [f"must be one of: {', '.join(sort_fields)}."]
        self.order = query.get("order", "desc")
        if self.order not in ("asc", "desc"):
            problems["order"] = ["must be asc or desc."]
        self.paginated = "limit" in query or "offset" in query
        if problems:
            name = next(iter(problems))
            raise ValidationFailed(f"{name}: {problems[name][0]}", fields=problems)

    @staticmethod
    def _int(query, name, default, minimum, maximum, problems):
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            problems[name] = ["must be a whole number."]
            return default
        if not minimum <= value <= maximum:
            problems[name] = [f"must be between {minimum} and {maximum}."]
            return default
        return value

    def page(self, queryset):
        return list(queryset[self.offset:self.offset + self.limit])
