"""Rendering a run's events as readable progress in a terminal.

`TerminalRenderer.feed()` takes the dicts that a run's SSE frames carry in
`data` (the same JSON that RunEvent stores), one at a time and in order, and
writes lines to a text stream. Only the coordinator's tokens stream live: two
entities answering at once would interleave their tokens into a mess, so each
entity's answer is printed whole when its delegation completes.
"""

import os
import sys
from datetime import datetime
from typing import TextIO

ANSI = {
    "bold": "\033[1m",
    "dim": "\033[2m",
    "red": "\033[31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "blue": "\033[34m",
    "magenta": "\033[35m",
    "cyan": "\033[36m",
}
RESET = "\033[0m"
INDENT = "    "


def use_color(stream: TextIO) -> bool:
    """True when `stream` is a terminal and NO_COLOR is unset (https://no-color.org)."""
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_duration(ms: float | None) -> str:
    if ms is None:
        return "unknown"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s"


def format_usage(usage: dict | None) -> str:
    if not usage:
        return "usage unknown"
    total = int(usage.get("total_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    text = f"{total} tokens ({prompt} prompt, {completion} completion"
    if usage.get("reasoning_tokens"):
        text += f", {usage['reasoning_tokens']} reasoning"
    if usage.get("cached_tokens"):
        text += f", {usage['cached_tokens']} cached"
    text += ")"
    cost = usage.get("cost_usd")
    text += ", cost unknown" if cost is None else f", ${cost:.6f}"
    return text


def _parse_ts(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class TerminalRenderer:
    """Turns one run's events into terminal lines. Feed it every event, in `seq` order."""

    def __init__(self, out: TextIO | None = None, *, color: bool | None = None):
        self.out = out if out is not None else sys.stdout
        self.color = use_color(self.out) if color is None else color
        self.run_id: str | None = None
        self.session_id: str | None = None
        self.final: dict | None = None
        self.errors: list[dict] = []
        self._started_at: datetime | None = None
        self._failed_agents: set[str] = set()
        # Coordinator text of the current step, streamed on an open line.
        self._streamed = ""
        self._line_open = False

    @property
    def status(self) -> str | None:
        """The run's final status once `complete` arrived, else None."""
        return self.final.get("status") if self.final else None

    @property
    def finished(self) -> bool:
        return self.final is not None

    def feed(self, event: dict) -> None:
        name = event.get("event") or ""
        if self._started_at is None:
            self._started_at = _parse_ts(event.get("ts"))
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(event)

    # Output helpers

    def _paint(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        return "".join(ANSI[style] for style in styles) + text + RESET

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _line(self, text: str = "") -> None:
        """Write a whole line, closing a streamed coordinator line first."""
        if self._line_open:
            self._write("\n")
            self._line_open = False
        self._write(text + "\n")

    def _block(self, text: str, indent: str = INDENT, *styles: str) -> None:
        for line in (text.strip("\n") or "(empty)").splitlines():
            self._line(indent + self._paint(line, *styles) if line.strip() else "")

    # Event handlers, one per event type

    def _on_start(self, event: dict) -> None:
        self.run_id = event.get("run_id")
        self.session_id = event.get("session_id")
        session = f"  session {self.session_id}" if self.session_id else ""
        self._line(self._paint(f"Run {self.run_id}", "bold") + self._paint(session, "dim"))

    def _on_orchestration_started(self, event: dict) -> None:
        count = event.get("entity_count")
        members = f", {count} {'entity' if count == 1 else 'entities'}" if count is not None else ""
        self._line(self._paint(f'Team "{event.get("name")}": {event.get("strategy")}{members}',
                               "dim"))

    def _on_step_started(self, event: dict) -> None:
        who = event.get("agent") or "Coordinator"
        self._streamed = ""
        self._line(self._paint(f"{who}, step {event.get('step')}", "bold", "blue"))

    def _on_content_delta(self, event: dict) -> None:
        if event.get("agent") is not None and event.get("child_execution_id"):
            return  # an entity's tokens: its whole answer comes with delegation_completed
        delta = event.get("delta") or ""
        if not delta:
            return
        if not self._line_open:
            self._write(INDENT)
            self._line_open = True
        self._streamed += delta
        self._write(delta.replace("\n", "\n" + INDENT))

    def _on_delegation_started(self, event: dict) -> None:
        agent = event.get("agent") or "?"
        self._line(INDENT + self._paint(f"-> {agent}", "bold", "cyan") + ": " + _one_line(event.get("task")))

    def _on_delegation_completed(self, event: dict) -> None:
        agent = event.get("agent") or "?"
        status = event.get("status") or "?"
        ok = status == "completed"
        usage = event.get("usage") or {}
        detail = f"{status} in {format_duration(event.get('duration_ms'))}"
        if usage.get("total_tokens") is not None:
            detail += f", {usage.get('total_tokens')} tokens"
        self._line(INDENT + self._paint(f"<- {agent}", "bold", "green" if ok else "red") + " " + detail)
        if ok:
            self._block(event.get("content") or "", INDENT * 2)
        else:
            self._failed_agents.add(agent)
            code = f"[{event['code']}] " if event.get("code") else ""
            self._line(INDENT * 2 + self._paint(f"{code}{event.get('error') or 'failed'}", "red"))

    def _on_tool_result(self, event: dict) -> None:
        # A call the engine rejected (unknown tool, empty task) starts no
        # delegation; its error goes back to the coordinator and is shown here.
        preview = event.get("result_preview") or ""
        if not preview.startswith("Error:"):
            return
        if any(preview.startswith(f"Error: {agent} failed") for agent in self._failed_agents):
            return
        self._line(INDENT + self._paint(f"! {event.get('tool_name')}: {preview}", "yellow"))

    def _on_model_retry(self, event: dict) -> None:
        who = event.get("agent") or "coordinator"
        delay = event.get("delay_seconds")
        wait = f" in {delay:.1f} s" if isinstance(delay, (int, float)) else ""
        self._discard_partial_stream(event)
        self._line(INDENT + self._paint(
            f"~ {who}: {event.get('model')} failed ({event.get('code')}); "
            f"retry {event.get('attempt')}{wait}", "yellow"))

    def _on_model_fallback(self, event: dict) -> None:
        who = event.get("agent") or "coordinator"
        self._discard_partial_stream(event)
        self._line(INDENT + self._paint(
            f"~ {who}: {event.get('from_model')} failed ({event.get('code')}); "
            f"falling back to {event.get('to_model')}", "yellow"))

    def _discard_partial_stream(self, event: dict) -> None:
        # The text streamed before a retry is thrown away by the engine.
        if event.get("agent") is None and self._streamed:
            self._streamed = ""
            self._line(INDENT + self._paint("(the text above was discarded)", "dim"))

    def _on_error(self, event: dict) -> None:
        self.errors.append(event)
        code = event.get("code") or "error"
        self._line(self._paint(f"Error [{code}]: {event.get('error') or ''}", "bold", "red"))

    def _on_complete(self, event: dict) -> None:
        self.final = event
        self.session_id = event.get("session_id") or self.session_id
        content = event.get("content") or ""
        status = event.get("status") or "unknown"
        streamed = self._streamed.strip()

        self._line()
        if content and content.strip() != streamed:
            self._line(self._paint("Answer", "bold"))
            self._block(content)
            self._line()
        elif not content:
            self._line(self._paint("No answer.", "dim"))

        status_style = "green" if status == "completed" else "red"
        steps = event.get("steps")
        status_line = self._paint(status, "bold", status_style)
        status_line += f", stop_reason {event.get('stop_reason') or 'none'}"
        if steps is not None:
            status_line += f", {steps} coordinator {'step' if steps == 1 else 'steps'}"
        if event.get("error"):
            status_line += f", error [{event.get('code') or 'error'}] {event.get('error')}"
        self._line(f"Status:   {status_line}")
        self._line(f"Usage:    {format_usage(event.get('usage'))}")
        ended = _parse_ts(event.get("ts"))
        if self._started_at and ended:
            self._line(f"Duration: {format_duration((ended - self._started_at).total_seconds() * 1000)}")
        self._line(f"Run:      {event.get('run_id') or self.run_id}"
                   + (f"  (session {self.session_id})" if self.session_id else ""))


def _one_line(text) -> str:
    return " ".join(str(text or "").split()) or "(no task)"
