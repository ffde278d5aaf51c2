"""Reading Server-Sent Events in tests, frame by frame, as a client would."""

import json
from dataclasses import dataclass


@dataclass
class Frame:
    id: int | None
    event: str
    data: dict
    raw_data: str


def iter_frames(lines):
    """Yield Frames from an iterator of text lines (httpx's `iter_lines`), skipping comments."""
    event_id, event, data_lines = None, "message", []
    for line in lines:
        if line == "":
            if data_lines:
                raw = "\n".join(data_lines)
                yield Frame(event_id, event, json.loads(raw), raw)
            event_id, event, data_lines = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = int(value)
        elif name == "event":
            event = value
        elif name == "data":
            data_lines.append(value)


def read_stream(response, *, stop_after: int | None = None) -> list[Frame]:
    """Read frames until the stream ends (or `stop_after` frames)."""
    frames = []
    for frame in iter_frames(response.iter_lines()):
        frames.append(frame)
        if stop_after is not None and len(frames) >= stop_after:
            break
    return frames


def event_names(frames) -> list[str]:
    return [frame.event for frame in frames]
