"""List prices of common hosted models, for the cost column of traces on the fast path.

USD per million tokens (input, output), as published by the providers; a model not
listed has no known cost (``None``).  litellm's own cost map is used when a model goes
through litellm.
"""

from __future__ import annotations

import re

# name (without provider prefix or date suffix) -> (input $/1M, output $/1M)
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}

_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def cost_of(model_id: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The cost in USD of one call, or ``None`` when the model's price is not known."""
    name = model_id.split("/", 1)[-1].lower()
    price = PRICES.get(name) or PRICES.get(_DATE.sub("", name))
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
