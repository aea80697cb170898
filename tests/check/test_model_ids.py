"""Model ids the checker rejects (an unknown provider, a misspelt built-in) and the
provider list it ships, compared with the installed litellm.

After upgrading litellm, regenerate the shipped list with::

    python tests/check/test_model_ids.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.check import litellm_providers
from promptflow_dsl.check.model_ids import model_id_problem

DATA_FILE = Path(__file__).resolve().parents[2] / "promptflow_dsl" / "check" / "litellm_providers.py"


# ------------------------------------------------------------------ what litellm knows


def _litellm():  # noqa: ANN202 - the litellm module
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from promptflow_dsl.models.remote import load_litellm

    return load_litellm()


def litellm_providers_now() -> set[str]:
    """The prefixes litellm routes by: its provider enum and its JSON-configured providers."""
    litellm = _litellm()
    from litellm.llms.openai_like.json_loader import JSONProviderRegistry

    JSONProviderRegistry.load()
    names = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    return names | set(JSONProviderRegistry._providers)


def litellm_slashed_models_now(providers: set[str]) -> set[str]:
    """Known model names with a slash whose prefix is no provider, which litellm still
    resolves (from its model lists)."""
    litellm = _litellm()
    candidates = set(litellm.model_cost)
    for attr in dir(litellm):
        value = getattr(litellm, attr, None)
        if attr.endswith(("_models", "model_list", "model_list_set")) and isinstance(
                value, (list, set, tuple, dict)):
            candidates |= {m for m in value if isinstance(m, str)}
    out = set()
    for m in candidates:
        if "/" not in m or m.split("/", 1)[0] in providers:
            continue
        if ":" in m and len(m) > litellm_providers.REPLICATE_ID_LENGTH:
            continue  # accepted by pattern
        try:
            litellm.get_llm_provider(m)
        except Exception:  # noqa: BLE001 - litellm's "LLM Provider NOT provided"
            continue
        out.add(m)
    return out


def _wrapped(names: set[str]) -> str:
    items = " ".join(f'"{n}",' for n in sorted(names))
    return textwrap.indent(textwrap.fill(items, width=96, break_long_words=False,
                                         break_on_hyphens=False), "    ")


def render_module() -> str:
    litellm = _litellm()
    from litellm.constants import REPLICATE_MODEL_NAME_WITH_ID_LENGTH

    providers = litellm_providers_now()
    slashed = litellm_slashed_models_now(providers)
    version = getattr(litellm, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("litellm")
    return f'''"""What litellm knows about model-id prefixes, as data: the checker never imports litellm.

Generated from litellm {version} by ``python tests/check/test_model_ids.py``;
``tests/check/test_model_ids.py`` fails when the installed litellm differs.
"""

LITELLM_VERSION = "{version}"

#: the prefixes litellm routes ``PROVIDER/NAME`` by (``litellm.provider_list`` and the
#: providers of its JSON registry)
PROVIDERS = frozenset({{
{_wrapped(providers)}
}})

#: names litellm knows whole although the part before the first slash is no provider
SLASHED_MODELS = frozenset({{
{_wrapped(slashed)}
}})

#: ``owner/model:version`` ids longer than this go to Replicate
REPLICATE_ID_LENGTH = {int(REPLICATE_MODEL_NAME_WITH_ID_LENGTH)}
'''


# ------------------------------------------------------------------ the shipped data


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_shipped_provider_list_matches_the_installed_litellm():
    providers = litellm_providers_now()
    assert set(litellm_providers.PROVIDERS) == providers, (
        "litellm's providers changed: regenerate with `python tests/check/test_model_ids.py`")
    assert set(litellm_providers.SLASHED_MODELS) == litellm_slashed_models_now(providers), (
        "litellm's model lists changed: regenerate with `python tests/check/test_model_ids.py`")
    from litellm.constants import REPLICATE_MODEL_NAME_WITH_ID_LENGTH

    assert litellm_providers.REPLICATE_ID_LENGTH == REPLICATE_MODEL_NAME_WITH_ID_LENGTH


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("model_id", [
    "openai/gpt-4o-mini", "anthropic/claude-3-5-sonnet-latest", "ollama/llama3", "gpt-4o-mini",
    "claude-sonnet-4-5", "petals-team/StableBeluga2", "azure/my-deployment",
    "a16z-infra/llama-2-13b-chat:2a7f981751ec7fdf87b5b91ad4db53683a98082e9ff7bfd12c8cd5ea85980a52",
])
def test_ids_the_check_accepts_are_ids_litellm_resolves(model_id):
    assert model_id_problem(model_id) is None
    _litellm().get_llm_provider(model_id)  # does not raise


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("model_id", ["opnai/gpt-4o", "local/smolm2", "OpenAI/gpt-4o",
                                      "huggingface-hub/x", "echo/x"])
def test_ids_the_check_rejects_are_ids_litellm_rejects(model_id):
    assert model_id_problem(model_id) is not None
    with pytest.raises(Exception, match="LLM Provider NOT provided"):
        _litellm().get_llm_provider(model_id)


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize("model_id,message", [
    ("opnai/gpt-4o", "unknown provider 'opnai' in model id 'opnai/gpt-4o'; "
                     "did you mean 'openai/gpt-4o'?"),
    ("anthropc/claude-3-haiku", "unknown provider 'anthropc' in model id 'anthropc/claude-3-haiku'; "
                                "did you mean 'anthropic/claude-3-haiku'?"),
    ("local/smolm2", "unknown built-in model 'local/smolm2'; did you mean 'local/smollm2'?"),
    ("local/llama", "unknown built-in model 'local/llama'; did you mean 'local/smollm2'?"),
    ("echo/x", "unknown provider 'echo' in model id 'echo/x'; did you mean 'echo'?"),
    ("OpenAI/gpt-4o", "unknown provider 'OpenAI' in model id 'OpenAI/gpt-4o'; "
                      "did you mean 'openai/gpt-4o'? (providers are lower-case)"),
    ("zzqx/m", "unknown provider 'zzqx' in model id 'zzqx/m'; write a litellm provider before "
               "the slash (openai/..., anthropic/..., ollama/...) or use a built-in model "
               "(local/smollm2, echo)"),
])
def test_messages(model_id, message):
    assert model_id_problem(model_id) == message


@pytest.mark.parametrize("model_id", ["local/smollm2", "echo", "my-embed", "gpt-4o",
                                      "text-completion-openai/x", "hosted_vllm/m"])
def test_accepted(model_id):
    assert model_id_problem(model_id) is None


def test_a_proxy_for_every_model_accepts_any_id(monkeypatch):
    monkeypatch.setenv("USE_LITELLM_PROXY", "True")
    assert model_id_problem("opnai/gpt-4o") is None


def test_check_reports_the_id_where_it_is_written(tmp_path: Path):
    path = tmp_path / "m.pflow"
    path.write_text('model fast = "opnai/gpt-4o"\nmodel default = "local/smolm2"\n'
                    'prompt p(x: str) -> str = "{{ x }}"\n')
    with pytest.raises(pf.CompileError) as info:
        pf.load(path)
    found = [(d.span.line, d.span.col, d.span.end_col, d.message) for d in info.value.errors]
    assert found == [
        (1, 14, 28, "unknown provider 'opnai' in model id 'opnai/gpt-4o'; "
                    "did you mean 'openai/gpt-4o'?"),
        (2, 17, 31, "unknown built-in model 'local/smolm2'; did you mean 'local/smollm2'?"),
    ]


def test_check_does_not_import_litellm(tmp_path: Path):
    path = tmp_path / "m.pflow"
    path.write_text('model fast = "opnai/gpt-4o"\n')
    code = ("import sys, promptflow_dsl as pf\n"
            "try:\n    pf.load(sys.argv[1])\nexcept pf.CompileError:\n    pass\n"
            "print('litellm' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


if __name__ == "__main__":  # regenerate the shipped data
    DATA_FILE.write_text(render_module(), encoding="utf-8")
    print(f"wrote {DATA_FILE}")
