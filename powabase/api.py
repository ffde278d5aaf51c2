"""DRF glue shared by every API view: one error shape, JSON only."""

import logging
import re
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from .config_rules import Rule, clean_config
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


class SafeJSONRenderer(JSONRenderer):
    """A JSON renderer that falls back to ASCII escapes where UTF-8 fails.

    JSON input may carry lone surrogates (`"\\ud800"`), which UTF-8 cannot
    encode, so a response that echoes one is rendered with `\\u` escapes.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _AsciiJSONRenderer().render(data, accepted_media_type, renderer_context)


class _AsciiJSONRenderer(JSONRenderer):
    ensure_ascii = True


# Deepest nesting of arrays and objects accepted in a request body.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(value, limit: int) -> bool:
    """Return whether `value` nests arrays and objects deeper than `limit`, without recursing."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, rejecting documents nested deeper than MAX_JSON_DEPTH.

    Python's decoder raises RecursionError (not ValueError) on very deep
    nesting, and everything that walks the data afterwards recurses too.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = json_depth_exceeds(data, MAX_JSON_DEPTH)
        if too_deep:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


class JsonOnlyNegotiation(BaseContentNegotiation):
    """Render JSON whatever the Accept header requests.

    Streaming views return their own text/event-stream response, so a client
    that sends `Accept: text/event-stream` must not get 406 on the way there.
    """

    def select_parser(self, request, parsers):
        media_type = request.content_type.split(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (SafeJSONRenderer(), SafeJSONRenderer.media_type)


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


# ---------------------------------------------------------------------------
# Input validation


MAX_LIMIT = 100
DEFAULT_LIMIT = 50
# Largest event id a resume request may name (the column is a 32-bit integer).
MAX_EVENT_ID = 2**31 - 1
RUN_ID_PATTERN = r"^(agent_run|orch_run)_[0-9a-f]{12}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)


def text_problem(value: str) -> str | None:
    """Return why `value` cannot be stored as text, or None.

    PostgreSQL rejects NUL characters, and lone surrogates (valid in JSON as
    `"\\ud800"`) cannot be encoded as UTF-8.
    """
    if "\x00" in value:
        return "must not contain NUL characters."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)."
    return None


def printable(text: str) -> str:
    """Return `text` with lone surrogates and NUL escaped, for error messages."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _text_problems(value, path: str, problems: dict) -> None:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            problems.setdefault(path, [problem])
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{printable(key)}" if path else printable(key)
            key_problem = text_problem(key)
            if key_problem:
                problems.setdefault(name, [f"(the key) {key_problem}"])
            _text_problems(item, name, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _text_problems(item, f"{path}.{index}", problems)


def _json_type_problem(field, value) -> str | None:
    """Return why the JSON type of `value` does not fit `field`, or None.

    Checked before DRF coerces the value, because DRF would accept "5" as an integer.
    """
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "must be true or false."
    if isinstance(field, serializers.IntegerField):
        return None if is_number and isinstance(value, int) else "must be a whole number."
    if isinstance(field, serializers.FloatField):
        return None if is_number else "must be a number."
    if isinstance(field, serializers.CharField | serializers.UUIDField | serializers.ChoiceField):
        return None if isinstance(value, str) else "must be a string."
    return None


class StrictSerializer(serializers.Serializer):
    """An input serializer that rejects unknown fields, wrong JSON types, unstorable
    text and non-object bodies.

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
        problems: dict[str, list[str]] = {}
        _text_problems(data, "", problems)
        if problems:
            raise serializers.ValidationError(problems)

        data = dict(data)
        for alias, name in self.aliases.items():
            if alias in data:
                value = data.pop(alias)
                if name in data and data[name] != value:
                    problems[alias] = [f"conflicts with {name}; send one of them."]
                data[name] = value
        for name in sorted(set(data) - set(self.fields) - set(self.ignored)):
            problems[name] = ["is not a known field."]
        for name in self.ignored:
            data.pop(name, None)
        for name, value in data.items():
            problem = _json_type_problem(self.fields[name], value) if name in self.fields else None
            if problem:
                problems[name] = [problem]
        if problems:
            raise serializers.ValidationError(problems)

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


def parse_run_id(value: str) -> str | None:
    """Return `value` if it has the shape of a run id; anything else names no run."""
    value = str(value)
    return value if _RUN_ID.match(value) else None


def last_event_id(request) -> int:
    """Return the seq to resume after, from `Last-Event-ID` or `?last_event_id=`."""
    raw = request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id") or "0"
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValidationFailed("Last-Event-ID must be a whole number (an event's id).",
                               fields={"Last-Event-ID": ["must be a whole number."]}) from None
    if not 0 <= value <= MAX_EVENT_ID:
        raise ValidationFailed(f"Last-Event-ID must be between 0 and {MAX_EVENT_ID}.",
                               fields={"Last-Event-ID": [f"must be between 0 and {MAX_EVENT_ID}."]})
    return value


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


class RunSubmitThrottle(SimpleRateThrottle):
    """Run submissions per API key, at most `POWABASE_RUN_RATE` (default "120/min").

    The history lives in Django's default cache, so the limit applies across web
    processes only when that cache is shared between them.
    """

    scope = "run_submit"

    def get_rate(self):
        return getattr(settings, "POWABASE_RUN_RATE", "120/min")

    def get_cache_key(self, request, view):
        api_key_id = getattr(request.auth, "pk", None)
        ident = f"key{api_key_id}" if api_key_id is not None else f"user{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


# ---------------------------------------------------------------------------
# OpenAPI documentation helpers


class ErrorOut(serializers.Serializer):
    """The body of every error response."""

    error = serializers.CharField(help_text="What went wrong, for people.")
    code = serializers.CharField(help_text="What went wrong, for programs (see each response).")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Validation errors only: the problems of each named field.",
    )

    class Meta:
        ref_name = "Error"


class DeletedOut(serializers.Serializer):
    deleted = serializers.BooleanField()


_STATUS_MEANING = {
    400: "The request is invalid.",
    401: "No API key, or an invalid or revoked one.",
    404: "Nothing with that id is visible to this API key.",
    409: "The request conflicts with the current state.",
    413: "The request body is larger than the configured limit.",
    415: "The request body is not JSON (`Content-Type: application/json`).",
    422: "The request conflicts with an earlier one.",
    429: "Too many run submissions for this API key; see `Retry-After`.",
    503: "The database is unavailable; see `Retry-After`.",
}


def errors(codes: dict[int, str | tuple[str, ...]] | None = None, *, body: bool = False,
           query: bool = False) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`, each listing its codes.

    Every operation may respond with 401 and 503. `body` adds the errors a JSON
    body can cause, and `query` the 400 of invalid query parameters.
    """
    by_status: dict[int, list[str]] = {401: ["authentication_required", "invalid_api_key"],
                                       503: ["service_unavailable"]}
    if body:
        by_status.setdefault(400, []).extend(["validation_error", "invalid_json"])
        by_status[413] = ["payload_too_large"]
        by_status[415] = ["unsupported_media_type"]
    if query:
        by_status.setdefault(400, []).append("validation_error")
    for status_code, extra in (codes or {}).items():
        names = by_status.setdefault(status_code, [])
        for name in (extra,) if isinstance(extra, str) else extra:
            if name not in names:
                names.append(name)
    if 404 in by_status and "not_found" not in by_status[404]:
        # A path segment that no route matches (e.g. one containing "/").
        by_status[404].append("not_found")
    return {
        status_code: OpenApiResponse(
            ErrorOut,
            description=f"{_STATUS_MEANING.get(status_code, '')} Codes: "
                        + ", ".join(f"`{name}`" for name in names) + ".",
        )
        for status_code, names in sorted(by_status.items())
    }


def list_parameters(sort_fields: tuple[str, ...]) -> list[OpenApiParameter]:
    """Return the query parameters that ListParams reads, for `extend_schema(parameters=...)`."""
    return [
        OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                         description=f"Rows per page (default {DEFAULT_LIMIT})."),
        OpenApiParameter("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000},
                         description="Rows to skip (default 0)."),
        OpenApiParameter("q", {"type": "string", "maxLength": 200},
                         description="Only rows whose name contains this text (case-insensitive)."),
        OpenApiParameter("sort", str, enum=list(sort_fields),
                         description=f"The field to sort by (default {sort_fields[0]})."),
        OpenApiParameter("order", str, enum=["asc", "desc"], description="Sort order (default desc)."),
    ]


def rule_schema(rule: Rule) -> dict:
    """Return the JSON schema of one config key, built from its validation rule."""
    if rule.kind in ("int", "number"):
        schema = {"type": "integer" if rule.kind == "int" else "number"}
        if rule.minimum is not None:
            schema["minimum"] = rule.minimum
        if rule.maximum is not None:
            schema["maximum"] = rule.maximum
    elif rule.kind == "bool":
        schema = {"type": "boolean"}
    elif rule.kind == "choice":
        schema = {"type": "string", "enum": list(rule.choices)}
    elif rule.kind == "url":
        schema = {"type": "string", "maxLength": rule.max_length, "pattern": "^https?://[^/?#]+"}
    elif rule.kind == "model":
        schema = {"type": "string", "minLength": 1, "maxLength": rule.max_length, "pattern": r"\S"}
    else:
        schema = {"type": "string", "maxLength": rule.max_length}
    schema["nullable"] = True
    return schema


class ConfigFieldScheme(OpenApiSerializerFieldExtension):
    """Document a ConfigField as an object of its known keys."""

    target_class = "powabase.api.ConfigField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "object",
            "properties": {key: rule_schema(rule) for key, rule in sorted(self.target.rules.items())},
            "additionalProperties": False,
            "description": "Unknown keys are refused; a null value removes the key.",
        }


class StrictSerializerScheme(OpenApiSerializerExtension):
    """Document a StrictSerializer: no other properties, and its aliases as alternatives."""

    target_class = "powabase.api.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        target = self.target if isinstance(self.target, StrictSerializer) else self.target()
        schema = auto_schema._map_basic_serializer(target, direction)
        properties = schema["properties"]
        required = schema.get("required", [])
        alternatives = []
        for alias, name in target.aliases.items():
            if name not in properties:
                continue
            properties[alias] = dict(properties[name])
            if "$ref" not in properties[alias]:
                properties[alias]["description"] = f"Another spelling of `{name}`."
            if name in required:
                required.remove(name)
                alternatives.append({"anyOf": [{"required": [name]}, {"required": [alias]}]})
        if not required:
            schema.pop("required", None)
        if len(alternatives) == 1:
            schema.update(alternatives[0])
        elif alternatives:
            schema["allOf"] = alternatives
        schema["additionalProperties"] = False
        return schema
