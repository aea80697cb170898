"""Tools for guardrail.pflow."""


def hedge(segment: str) -> str:
    """What a refused sentence is replaced with (``segment`` is the refusal)."""
    return "Best guess, stated with its uncertainty:"
