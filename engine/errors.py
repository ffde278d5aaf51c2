"""Errors the engine reports, each with the code clients see."""


class EngineError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ModelError(EngineError):
    """A model call failed after retries; `code` is one of the llm_* codes."""

    def __init__(self, message: str, *, code: str, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after = retry_after


class StopRun(EngineError):
    """A budget or limit was reached; the run ends with `stop_reason`."""

    def __init__(self, message: str, *, stop_reason: str, failed: bool = True):
        super().__init__(message, code=stop_reason)
        self.stop_reason = stop_reason
        self.failed = failed
