"""The service's error family: every error a client sees carries a code."""


class ServiceError(Exception):
    """A failure to report to the client as `{"error", "code", "fields"?}`."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 fields: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields
        self.headers = headers or {}


class ValidationFailed(ServiceError):
    status = 400
    code = "validation_error"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class ServiceUnavailable(ServiceError):
    status = 503
    code = "service_unavailable"
