"""Which model each call goes to, how it counts tokens, what it costs — without a call.

:class:`Models` resolves a model name as a handler's module writes it the way the run
does (``--model`` overrides, the module's declarations, ``local/smollm2`` when nothing
is declared) and gives, per model id, its capabilities (the static tables the backends
use), its tokenizer (:func:`~promptflow_dsl.models.tokenizers.tokenizer_for`), its
default reply length and its price.

Prices come from litellm's price map (``litellm.get_model_info``, read from the copy
litellm ships: ``LITELLM_LOCAL_MODEL_COST_MAP``), in USD per token; litellm is
imported only when a model other than ``local/smollm2`` and ``echo`` needs a price or a
default length. The built-in models cost 0; a model litellm does not know has no price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..check.program import CheckedProgram
from ..models.base import Capabilities, GenParams
from ..models.registry import LOCAL_ID, ModelRegistry, RegistrySettings
from ..models.tokenizers import Tokenizer, tokenizer_for
from .tally import Price

ECHO_ID = "echo"
FREE = frozenset({LOCAL_ID, ECHO_ID})


@dataclass(frozen=True)
class Model:
    """A model as a handler uses it: its id, declared parameters and what it can do."""

    name: str  # as the module writes it (`default`, `fast`, `alias.fast`)
    id: str
    params: dict[str, Any]
    caps: Capabilities
    tokenizer: Tokenizer

    @property
    def free(self) -> bool:
        return self.id in FREE


def capabilities_of(model_id: str, params: Mapping[str, Any]) -> Capabilities:
    """The capabilities a backend for ``model_id`` declares (no backend is created)."""
    if model_id == LOCAL_ID:
        from ..models.local import LocalBackend

        return LocalBackend.capabilities
    if model_id == ECHO_ID:
        from ..models.echo import EchoBackend

        return EchoBackend().capabilities
    from ..models.remote import capabilities_for

    return capabilities_for(model_id, params, ask_litellm=False)


@dataclass
class Models:
    """Model resolution and facts for one estimate (see the module docstring)."""

    program: CheckedProgram
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..runtime.context import declared_models

        self.declared = declared_models(self.program)
        self.registry = ModelRegistry(self.declared, RegistrySettings(overrides=dict(self.overrides)))
        self._info: dict[str, dict[str, Any] | None] = {}
        self.notes: list[str] = []  # what the numbers assume about models
        self._prices: dict[str, Price | None] = {}
        self._models: dict[tuple[str, str], Model] = {}

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def model(self, module_key: str, name: str | None) -> Model:
        """The model ``name`` (None: ``default``) as written in module ``module_key``."""
        name = name or "default"
        key = (module_key, name)
        if key not in self._models:
            info = self.declared.get(module_key, {}).get(name)
            model_id = self.overrides.get(name) or (info.model_id if info else LOCAL_ID)
            params = dict(info.params) if info else {}
            self._models[key] = Model(name, model_id, params, capabilities_of(model_id, params),
                                      tokenizer_for(model_id, params))
        return self._models[key]

    def tokenizer(self, model_id: str) -> Tokenizer:
        info = next((m for decls in self.declared.values() for m in decls.values()
                     if m.model_id == model_id), None)
        return tokenizer_for(model_id, info.params if info else None)

    def gen_params(self, model: Model, handler_params: Mapping[str, Any], **fields: Any) -> GenParams:
        """The merged generation parameters of a call (declaration < handler < ``fields``)."""
        return self.registry.gen_params(model.params, GenParams(extra=dict(handler_params), **fields))

    def max_tokens(self, model: Model, params: GenParams) -> int | None:
        """The ``max_tokens`` bound of a call: its parameters', else the model's default
        (256 on ``local/smollm2``; litellm's ``max_output_tokens``), else ``None``."""
        if params.max_tokens is not None:
            return int(params.max_tokens)
        if model.id == LOCAL_ID:
            from ..models.local import DEFAULT_MAX_TOKENS

            return DEFAULT_MAX_TOKENS
        if model.id == ECHO_ID:
            return None
        info = self._litellm_info(model.id)
        value = info.get("max_output_tokens") if info else None
        if isinstance(value, int | float) and value > 0:
            self._note(f"{model.id}: calls without max_tokens are bounded by the model's maximum "
                       f"output ({int(value):,} tokens); set max_tokens for a tighter bound")
            return int(value)
        self._note(f"{model.id}: calls without max_tokens have no known bound on their output")
        return None

    def price(self, model_id: str) -> Price | None:
        """USD per token, or ``None`` when litellm's price map does not know the model."""
        if model_id in FREE:
            return Price(0.0, 0.0)
        if model_id not in self._prices:
            self._prices[model_id] = self._price(model_id)
        return self._prices[model_id]

    def _price(self, model_id: str) -> Price | None:
        info = self._litellm_info(model_id)
        if not info:
            return None
        inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if not isinstance(inp, int | float) or not isinstance(out, int | float):
            return None
        return Price(float(inp), float(out))

    def _litellm_info(self, model_id: str) -> dict[str, Any] | None:
        if model_id not in self._info:
            self._info[model_id] = litellm_model_info(model_id)
        return self._info[model_id]


def litellm_model_info(model_id: str) -> dict[str, Any] | None:
    """litellm's entry for ``model_id`` (tried whole, then without its provider), or None."""
    try:
        from ..models.remote import load_litellm

        litellm = load_litellm()
    except Exception:  # noqa: BLE001 - no litellm: no prices
        return None
    candidates = [model_id]
    if "/" in model_id:
        candidates.append(model_id.split("/", 1)[1])
    for cand in candidates:
        try:
            info = litellm.get_model_info(cand)
        except Exception:  # noqa: BLE001 - litellm raises several kinds for an unknown model
            info = litellm.model_cost.get(cand)
        if info:
            return dict(info)
    return None
