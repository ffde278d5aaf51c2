from dataclasses import dataclass, field


@dataclass
class Usage:
    """Token counts and cost of one or more model calls.

    `cost_usd` is None when any call's model has no price in litellm's local
    cost map: an unknown cost is reported as unknown, not as zero.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = 0.0
    calls: int = field(default=0, compare=False)

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cached_tokens += other.cached_tokens
        self.total_tokens += other.total_tokens
        self.calls += other.calls
        if self.cost_usd is None or other.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += other.cost_usd

    def as_dict(self) -> dict:
        cost = None if self.cost_usd is None else round(self.cost_usd, 8)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": cost,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> "Usage":
        data = data or {}
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            reasoning_tokens=int(data.get("reasoning_tokens") or 0),
            cached_tokens=int(data.get("cached_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cost_usd=data.get("cost_usd", 0.0),
        )


def sum_usage(items) -> Usage:
    total = Usage()
    for item in items:
        total.add(item)
    return total
