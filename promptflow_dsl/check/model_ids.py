"""Model ids that cannot work: an unknown provider before the slash, a misspelt built-in.

A model id is a built-in (``local/smollm2``, ``echo``) or a litellm model string.
litellm routes ``PROVIDER/NAME`` by its provider prefix and fails at run time
("LLM Provider NOT provided") when the prefix is none it knows, so the checker
reports such an id where it is written.  The check is conservative:

- an id without a slash is never an error: litellm resolves bare names it knows
  (``gpt-4o-mini``, ``claude-3-5-sonnet-latest``) from its model lists and rules,
  which change with every release;
- an id whose prefix is a known provider (:data:`~.litellm_providers.PROVIDERS`,
  shipped as data so that the checker never imports litellm) is accepted whatever
  follows the slash;
- so is a name litellm knows whole although its prefix is no provider
  (:data:`~.litellm_providers.SLASHED_MODELS`, e.g. ``petals-team/StableBeluga2``),
  and a Replicate version id (``owner/model:<64-character version>``);
- with ``USE_LITELLM_PROXY`` set, litellm sends every id to a proxy: nothing is
  rejected.
"""

from __future__ import annotations

import difflib
import os

from .litellm_providers import PROVIDERS, REPLICATE_ID_LENGTH, SLASHED_MODELS

BUILTINS = ("local/smollm2", "echo")


def _close(word: str, options: list[str] | tuple[str, ...] | frozenset[str]) -> str | None:
    found = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return found[0] if found else None


def model_id_problem(model_id: str) -> str | None:
    """Why ``model_id`` cannot be run (a message with a suggestion), or ``None``."""
    if "/" not in model_id or model_id in BUILTINS:
        return None
    if os.environ.get("USE_LITELLM_PROXY", "").strip().lower() == "true":
        return None
    provider, name = model_id.split("/", 1)
    if provider in PROVIDERS or model_id in SLASHED_MODELS:
        return None
    if ":" in model_id and len(model_id) > REPLICATE_ID_LENGTH:
        return None  # litellm sends `owner/model:version` to Replicate
    if provider.lower() == "local":
        return f"unknown built-in model '{model_id}'; did you mean 'local/smollm2'?"
    message = f"unknown provider '{provider}' in model id '{model_id}'"
    if provider.lower() in PROVIDERS:
        return f"{message}; did you mean '{provider.lower()}/{name}'? (providers are lower-case)"
    builtin = _close(model_id, BUILTINS)
    if builtin is not None:
        return f"{message}; did you mean '{builtin}'?"
    close = _close(provider.lower(), PROVIDERS)
    if close is not None:
        return f"{message}; did you mean '{close}/{name}'?"
    return (f"{message}; write a litellm provider before the slash (openai/..., anthropic/..., "
            f"ollama/...) or use a built-in model ({', '.join(BUILTINS)})")
