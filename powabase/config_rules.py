"""Rules for the JSON objects that configure agents, teams and entities.

The API serializers and the admin forms both validate with these, so an
operator sees the same errors in either place.
"""

from dataclasses import dataclass
from urllib.parse import urlparse

MAX_TEXT = 20_000


@dataclass(frozen=True)
class Rule:
    kind: str  # "int", "number", "str", "bool", "choice", "url", "model"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int = 500


MODEL = Rule("model", max_length=200)
TIMEOUT = Rule("number", minimum=0.1, maximum=3600)
STEPS = Rule("int", minimum=1, maximum=100)
TEMPERATURE = Rule("number", minimum=0, maximum=2)
MAX_TOKENS = Rule("int", minimum=1, maximum=1_000_000)
API_BASE = Rule("url")
REASONING = Rule("choice", choices=("minimal", "low", "medium", "high"))

AGENT_SETTINGS = {
    "temperature": TEMPERATURE,
    "max_tokens": MAX_TOKENS,
    "max_steps": STEPS,
    "fallback_model": MODEL,
    "timeout_seconds": TIMEOUT,
    "api_base": API_BASE,
    "max_retries": Rule("int", minimum=0, maximum=10),
    "reasoning_effort": REASONING,
}

ORCHESTRATION_SETTINGS = {
    "model": MODEL,
    "max_steps": STEPS,
    "max_delegations": Rule("int", minimum=1, maximum=1000),
    "timeout_seconds": TIMEOUT,
    "max_tokens": Rule("int", minimum=1, maximum=100_000_000),
    "max_cost_usd": Rule("number", minimum=0, maximum=100_000),
    "fallback_model": MODEL,
    "api_base": API_BASE,
    "temperature": TEMPERATURE,
    "max_retries": Rule("int", minimum=0, maximum=10),
}

ORCHESTRATOR_CONFIG = {
    "model": MODEL,
    "additional_instructions": Rule("str", max_length=MAX_TEXT),
    "reasoning_effort": REASONING,
    "api_base": API_BASE,
    "temperature": TEMPERATURE,
    "max_tokens": MAX_TOKENS,
    "fallback_model": MODEL,
    "delegation_mode": Rule("choice", choices=("auto", "forced")),
    "allow_direct_answer": Rule("bool"),
}

ENTITY_CONFIG = {
    "max_steps": STEPS,
    "model": MODEL,
    "timeout_seconds": TIMEOUT,
    "temperature": TEMPERATURE,
    "max_tokens": MAX_TOKENS,
    "fallback_model": MODEL,
    "api_base": API_BASE,
    "max_retries": Rule("int", minimum=0, maximum=10),
}


def _bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


def _check(rule: Rule, value) -> str | None:
    if value is None:
        return None
    if rule.kind in ("int", "number"):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        is_number = is_int or (isinstance(value, float) and value == value and abs(value) != float("inf"))
        if rule.kind == "int" and not is_int:
            return "must be a whole number"
        if not is_number:
            return "must be a number"
        if rule.minimum is not None and value < rule.minimum:
            return f"must be at least {rule.minimum:g}"
        if rule.maximum is not None and value > rule.maximum:
            return f"must be at most {rule.maximum:g}"
        return None
    if rule.kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if not isinstance(value, str):
        return "must be a string"
    problem = _bad_text(value)
    if problem:
        return problem
    if rule.kind == "model" and not value.strip():
        return "must be a non-empty model id"
    if len(value) > rule.max_length:
        return f"must be at most {rule.max_length} characters"
    if rule.kind == "choice" and value not in rule.choices:
        return f"must be one of: {', '.join(rule.choices)}"
    if rule.kind == "url" and value:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return "must be an http:// or https:// URL"
    return None


def validate_config(value, rules: dict[str, Rule]) -> dict[str, str]:
    """Return {key: problem} for `value`; empty when it follows `rules`."""
    if not isinstance(value, dict):
        return {"": "must be a JSON object"}
    problems = {}
    for key, item in value.items():
        rule = rules.get(key)
        if rule is None:
            problems[key] = f"is not a known key; known keys: {', '.join(sorted(rules))}"
            continue
        problem = _check(rule, item)
        if problem:
            problems[key] = problem
    return problems


def clean_config(value, rules: dict[str, Rule]) -> dict:
    """Return `value` without null entries, or raise ValueError listing its problems."""
    problems = validate_config(value, rules)
    if problems:
        raise ValueError("; ".join(f"{k}: {p}" if k else p for k, p in problems.items()))
    return {key: item for key, item in value.items() if item is not None}
