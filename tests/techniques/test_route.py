"""`route` handlers (Mixture-of-Prompts): the three routers, delegating and automatic
experts, the embedders and their cache, `pflow route explain` and `pflow optimize`.
All offline: scripted models, the built-in embedder, and the loopback fake OpenAI
server for a litellm embedding model."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import REPO, SHARED_EXAMPLES
from doc_blocks import check_blocks, pflow_blocks

import promptflow_dsl as pf
from promptflow_dsl import cli
from promptflow_dsl.kinds.route import kmeans
from promptflow_dsl.kinds.route import prepare as prepare_mod
from promptflow_dsl.kinds.route.cache import EmbeddingCache, clear_memory
from promptflow_dsl.kinds.route.embedders import OfflineEmbedder, features, tokens
from promptflow_dsl.kinds.route.prepare import Centroids
from promptflow_dsl.kinds.route.run import prepared_route
from promptflow_dsl.models.base import Capabilities
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.session import open_context
from promptflow_dsl.testing.harness import Harness

MATH = [("What is 17 plus 25?", "42"), ("What is 9 times 8?", "72"), ("What is 100 minus 37?", "63")]
CAPS = [("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
        ("What is the capital of Kenya?", "Nairobi")]


def jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))


@pytest.fixture(autouse=True)
def _fresh_memory(monkeypatch, tmp_path):
    """Each test starts without vectors or assignments in memory, and writes its
    embedding cache under its own folder."""
    clear_memory()
    prepare_mod._assignments.clear()
    monkeypatch.setenv("PFLOW_EMBED_CACHE_DIR", str(tmp_path / "embeddings"))
    yield
    clear_memory()
    prepare_mod._assignments.clear()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pflow.toml").write_text("")
    jsonl(tmp_path / "math.jsonl", MATH)
    jsonl(tmp_path / "caps.jsonl", CAPS)
    return tmp_path


EMBED_ROUTE = '''
model default = "echo"
{extra}
route answer(question: str) -> str {{
  by embedding
  {embed}
  expert arithmetic {{
    instruction "Compute the result. Reply with the number only."
    demos "math.jsonl"
  }}
  expert capitals {{
    instruction "Name the capital city."
    demos "caps.jsonl"
  }}
}}
'''


def load(project: Path, text: str, name: str = "p.pflow"):
    path = project / name
    path.write_text(text)
    return pf.load(path)


def cfg(project: Path, **kw) -> RunConfig:
    kw.setdefault("cache", CacheMode.OFF)
    return RunConfig(trace_dir=project / "traces", write_trace=False, **kw)


# ------------------------------------------------------------------ the spec's example


@pytest.mark.skipif(not (SHARED_EXAMPLES / "routing.pflow").is_file(),
                    reason="the spec's examples are not beside this checkout")
def test_spec_routing_example_tests_pass(capsys):
    code = cli.main(["test", str(SHARED_EXAMPLES / "routing.pflow")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 passed, 0 failed" in out


def test_examples_routing_tests_pass(capsys):
    code = cli.main(["test", str(REPO / "examples" / "routing")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out


# ------------------------------------------------------------------ by embedding


def test_embedding_router_messages_trace_and_counter(project):
    program = load(project, EMBED_ROUTE.format(extra="", embed=""))
    scripted = ScriptedBackend("default", ["12"])
    r = program.run("answer", config=cfg(project, backends={"default": scripted}),
                    question="What is 5 plus 7?")
    assert r.value == "12"
    call = scripted.calls[0]
    roles = [(m.role, m.content) for m in call.messages]
    assert roles[0] == ("system", "Compute the result. Reply with the number only.")
    assert roles[1:7] == [("user", MATH[0][0]), ("assistant", "42"), ("user", MATH[1][0]),
                          ("assistant", "72"), ("user", MATH[2][0]), ("assistant", "63")]
    assert roles[-1] == ("user", "What is 5 plus 7?")
    route_step = next(s for s in r.trace.steps if s.kind == "route")
    event = next(e for e in route_step.events if e["type"] == "route")
    assert event["expert"] == "arithmetic"
    assert set(event["distances"]) == {"arithmetic", "capitals"}
    assert event["distances"]["arithmetic"] < event["distances"]["capitals"]
    assert route_step.extra["route"]["expert"] == "arithmetic"
    expert_step = next(s for s in r.trace.steps if s.kind == "expert")
    assert expert_step.handler == "answer[arithmetic]" and expert_step.parent == route_step.id
    assert expert_step.reply == "12" and r.trace.totals.calls == 1


def test_embedding_router_capitals(project):
    h = Harness(load(project, EMBED_ROUTE.format(extra="", embed="")))
    h.mock_model("default", ["Rome"])
    assert h.run("answer", question="What is the capital of Italy?") == "Rome"
    assert h._run.ctx.routed[h.program.handler("answer").key] == "capitals"


def test_centroids_cosine_and_ties():
    c = Centroids.from_groups({"a": np.array([[1.0, 0.0], [1.0, 0.2]]),
                               "b": np.array([[0.0, 1.0]])})
    name, dist = c.nearest(np.array([2.0, 0.1]))
    assert name == "a" and dist["a"] < 0.01 and dist["b"] > 0.9
    tie = Centroids.from_groups({"x": np.array([[1.0, 0.0]]), "y": np.array([[1.0, 0.0]])})
    assert tie.nearest(np.array([1.0, 0.0]))[0] == "x"  # written first wins
    e = Centroids.from_groups({"a": np.array([[1.0, 0.0]])}, metric="euclidean")
    assert e.distances(np.array([0.0, 3.0]))["a"] == pytest.approx(2 ** 0.5, abs=1e-5)
    with pytest.raises(ValueError):
        Centroids.from_groups({}, metric="manhattan")


def test_offline_embedder_features_and_vectors():
    assert tokens("What is 12 + 30?") == ["what", "is", "<num>", "+", "<num>", "?"]
    f = features("Capitals of France")
    assert f["wcapitals"] == 1 and f["sof"] == 1 and "c<cap" in f and "c<of" not in f
    e = OfflineEmbedder.fit(["What is 2 plus 2?", "What is the capital of France?"])
    v = e.vector("What is 3 plus 4?")
    assert v.dtype == np.float32 and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert np.array_equal(v, e.vector("What is 3 plus 4?"))
    assert not e.vector("").any()
    assert e.id != OfflineEmbedder.fit(["another corpus"]).id
    assert e.id == OfflineEmbedder.fit(["What is 2 plus 2?", "What is the capital of France?"]).id


def test_offline_embedder_reaches_the_bench_bar():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import route_eval
    finally:
        sys.path.remove(str(REPO / "bench"))

    class Args:
        embed_model = api_base = api_key_env = None
        no_cache = True

    report = asyncio.run(route_eval.evaluate(Args()))
    assert report["heldout"] >= 40 and all(n >= 20 for n in report["demos"].values())
    assert report["accuracy"] >= 0.9, report["errors"]


# ------------------------------------------------------------------ embedding cache


class CountingEmbedder:
    """An embedding backend that counts its calls (vectors from the echo hash)."""

    def __init__(self) -> None:
        from promptflow_dsl.models.echo import hashed_embedding

        self.model_id = "count-embed"
        self.capabilities = Capabilities(chat=False, embeddings=True)
        self.calls: list[list[str]] = []
        self._embed = hashed_embedding

    async def embed(self, texts):
        self.calls.append(list(texts))
        return [self._embed(t) for t in texts]

    async def aclose(self):
        return None


def test_demo_embeddings_are_cached_on_disk(project, tmp_path):
    text = EMBED_ROUTE.format(extra='model emb = "my-embed" embed', embed="embed emb")
    program = load(project, text)
    counting = CountingEmbedder()
    backends = {"emb": counting, "default": ScriptedBackend("default", ["1", "2", "3"])}
    program.run("answer", config=cfg(project, cache=CacheMode.DEFAULT, backends=backends),
                question="What is 5 plus 7?")
    assert [len(c) for c in counting.calls] == [6, 1]  # the demos in one batch, then the input
    files = list((tmp_path / "embeddings").rglob("*.npy"))
    assert len(files) == 7
    assert np.load(files[0], allow_pickle=False).ndim == 1
    clear_memory()  # a new process: only the disk is left
    program.run("answer", config=cfg(project, cache=CacheMode.DEFAULT, backends=backends),
                question="What is 5 plus 7?")
    assert len(counting.calls) == 2  # second run: no embedder call at all
    program.run("answer", config=cfg(project, cache=CacheMode.DEFAULT, backends=backends),
                question="What is 6 plus 8?")
    assert counting.calls[-1] == ["What is 6 plus 8?"]  # only the new input


def test_embedding_cache_modes_and_bad_files(tmp_path):
    async def go():
        e = OfflineEmbedder.fit(["a b", "c d"])
        cache = EmbeddingCache(tmp_path / "emb", CacheMode.DEFAULT)
        first = await cache.embed(e, ["a b", "c d", "a b"])
        assert first.shape == (3, e.dims) and e.texts == 2  # duplicates embedded once
        clear_memory()
        for f in (tmp_path / "emb").rglob("*.npy"):
            f.write_bytes(b"not an array")  # a damaged file is a miss, never a failure
        again = await cache.embed(e, ["a b", "c d"])
        assert np.allclose(again, first[:2]) and e.texts == 4
        clear_memory()
        await EmbeddingCache(tmp_path / "emb", CacheMode.DEFAULT).embed(e, ["a b"])
        assert e.texts == 4  # rewritten files are read back
        await EmbeddingCache(tmp_path / "emb", CacheMode.REFRESH).embed(e, ["a b"])
        assert e.texts == 5
        off = EmbeddingCache(tmp_path / "off", CacheMode.OFF)
        await off.embed(e, ["zz"])
        assert not (tmp_path / "off").exists()

    asyncio.run(go())


def test_route_prepared_once_per_run_under_fan_out(project):
    text = EMBED_ROUTE.format(extra='model emb = "my-embed" embed', embed="embed emb") + '''
flow many(qs: list[str]) -> list[str] {
  return [answer(question=q) for q in qs]
}
'''
    program = load(project, text)
    counting = CountingEmbedder()
    r = program.run("many", config=cfg(project, backends={"emb": counting}),
                    qs=["What is 1 plus 1?", "What is the capital of Peru?", "What is 2 times 3?"])
    assert r.value == ["What is 1 plus 1?", "What is the capital of Peru?", "What is 2 times 3?"]
    assert len(counting.calls[0]) == 6 and all(len(c) == 1 for c in counting.calls[1:])
    assert len(counting.calls) == 4


def test_litellm_embedding_model_against_the_fake_server(project, fake_openai, monkeypatch):
    from fakeserver import fake_embedding

    monkeypatch.setenv("PFLOW_FAKE_KEY", "sk-fake-key-0123456789")
    extra = (f'model emb = "openai/text-embedding-fake" embed {{ api_base: "{fake_openai.base_url}",'
             f' api_key_env: "PFLOW_FAKE_KEY" }}\n'
             f'model chat = "openai/fake" {{ api_base: "{fake_openai.base_url}", '
             f'api_key_env: "PFLOW_FAKE_KEY" }}')
    text = EMBED_ROUTE.format(extra=extra, embed="embed emb\n  model chat")
    program = load(project, text)
    q = "What is 5 plus 7?"
    r = program.run("answer", config=cfg(project, cache=CacheMode.DEFAULT), question=q)
    embeds = [x for x in fake_openai.requests if x["path"].endswith("/embeddings")]
    assert [x["body"]["input"] for x in embeds] == [[i for i, _ in MATH + CAPS], [q]]
    # the choice is the nearest centroid of the server's vectors
    c = Centroids.from_groups({"arithmetic": np.array([fake_embedding(i) for i, _ in MATH]),
                               "capitals": np.array([fake_embedding(i) for i, _ in CAPS])})
    expected = c.nearest(np.array(fake_embedding(q)))[0]
    step = next(s for s in r.trace.steps if s.kind == "route")
    assert step.extra["route"]["expert"] == expected
    assert r.value == q  # the fake chat model echoes the last user message
    clear_memory()
    before = len(fake_openai.requests)
    program.run("answer", config=cfg(project, cache=CacheMode.DEFAULT), question=q)
    assert not [x for x in fake_openai.requests[before:] if x["path"].endswith("/embeddings")]


# ------------------------------------------------------------------ automatic experts


def blobs(seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centers = np.eye(6)[:3] * 5
    xs, labels = [], []
    for i in range(30):
        k = i % 3
        xs.append(centers[k] + rng.normal(0, 0.3, 6))
        labels.append(k)
    return np.array(xs), labels


@pytest.mark.parametrize("use_sklearn", [False, pytest.param(True, marks=pytest.mark.skipif(
    not kmeans.have_sklearn(), reason="scikit-learn is not installed"))])
def test_k_is_chosen_by_the_criterion(use_sklearn):
    x, truth = blobs()
    a = kmeans.assign(x, 6, use_sklearn=use_sklearn)
    assert a.k == 3
    assert a.labels == truth  # clusters numbered by first member: 0, 1, 2, 0, 1, 2...
    assert set(a.criterion) == {2, 3, 4, 5, 6}
    for k, value in a.criterion.items():
        assert value == pytest.approx(a.inertia[k] / a.inertia[1] + 0.02 * k)
    assert min(a.criterion, key=a.criterion.get) == 3
    assert a.backend == ("scikit-learn" if use_sklearn else "numpy")


def test_criterion_penalty_prefers_fewer_clusters():
    x, _ = blobs()
    assert kmeans.assign(x, 6, penalty=0.5).k == 2  # a heavy penalty: two clusters
    one = kmeans.assign(np.ones((4, 3)), 3)
    assert one.k == 1 and one.labels == [0, 0, 0, 0]


AUTO = '''
model default = "echo"
route answer(question: str) -> str {
  by embedding
  experts auto from "train.jsonl" max 3
}
'''


def auto_project(project: Path) -> Path:
    rows = ([(f"What is {a} plus {b}?", str(a + b)) for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]]
            + [(f"What is the capital of {c}?", c) for c in ["France", "Spain", "Peru", "Chile"]]
            + [(f"Review: the {p} broke after a day.", "negative")
               for p in ["lamp", "phone", "kettle", "drill"]])
    order = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    jsonl(project / "train.jsonl", [rows[i] for i in order])
    return project


def test_automatic_experts_run_and_are_cached(project, monkeypatch):
    auto_project(project)
    program = load(project, AUTO)
    h = program.handler("answer")
    assert h.details.auto.rows == 12 and len(h.details.auto.demos) == 12
    calls = []
    real = kmeans.assign

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(prepare_mod, "assign", counting)

    async def experts(mode):
        async with open_context(program, RunConfig(cache=mode, write_trace=False)) as ctx:
            prep = await prepared_route(ctx, h)
            return prep.experts, prep.assignment, await prep.distances("What is 9 plus 9?")

    ex, a, (chosen, dist) = asyncio.run(experts(CacheMode.DEFAULT))
    assert a.k == 3 and [e.name for e in ex] == ["expert_1", "expert_2", "expert_3"]
    assert [e.instruction for e in ex] == ["", "", ""]
    assert [d["input"] for d in ex[0].demos][:2] == ["What is 1 plus 2?", "What is 3 plus 4?"]
    assert chosen == "expert_1" and set(dist) == {"expert_1", "expert_2", "expert_3"}
    assert len(calls) == 1
    prepare_mod._assignments.clear()
    clear_memory()
    ex2, a2, _ = asyncio.run(experts(CacheMode.DEFAULT))  # from the disk: no re-clustering
    assert len(calls) == 1 and a2.labels == a.labels and [e.demos for e in ex2] == [e.demos for e in ex]
    h2 = Harness(program)
    h2.mock_model("default", ["6"])
    assert h2.run("answer", question="What is 2 plus 4?") == "6"
    assert h2._run.ctx.routed[h.key] == "expert_1"
    call = h2.model_calls("default")[0]
    assert call.messages[0].role == "user"  # no instruction yet: no system message


# ------------------------------------------------------------------ by rule: `when` in the body

BODY_WHEN = '''
model default = "echo"
prompt general(ticket: str) -> str = "Answer briefly: {{ ticket }}"

route triage(ticket: str) -> str {
  by rule
  expert refunds { when "refund" in lower(ticket)  instruction "You handle refunds." }
  expert outage {
    when lower(ticket) contains "down"
    instruction "You handle outages."
  }
  expert empty -> general { when len(strip(ticket)) == 0 }
  expert other -> general
}

test "a `when` in the body picks its expert" {
  mock model default replies ["Refunds take 5 days."]
  out = triage(ticket="I want a REFUND")
  expect routed(triage) == "refunds"
  expect out == "Refunds take 5 days."
}

test "the default expert takes what no rule claims" {
  mock model default replies ["Hello."]
  out = triage(ticket="hi")
  expect routed(triage) == "other"
  expect calls(general) == 1
}
'''


def test_rule_when_in_the_expert_body_checks_and_runs(project, capsys):
    program = load(project, BODY_WHEN)
    experts = program.handler("triage").decl.experts
    assert [e.when is not None for e in experts] == [True, True, True, False]
    scripted = ScriptedBackend("default", ["The site is back.", "Refunds take 5 days."])
    config = cfg(project, backends={"default": scripted})
    r = program.run("triage", config=config, ticket="The site is DOWN")
    assert r.value == "The site is back."
    assert scripted.calls[0].messages[0].content == "You handle outages."
    event = next(e for s in r.trace.steps if s.kind == "route" for e in s.events
                 if e["type"] == "route")
    assert event["expert"] == "outage"
    assert event["rules"] == {"refunds": False, "outage": True}  # later rules not evaluated
    r = program.run("triage", config=config, ticket="refund please")
    assert r.value == "Refunds take 5 days."
    assert cli.main(["test", str(project / "p.pflow")]) == 0, capsys.readouterr().out
    code = cli.main(["route", "explain", str(project / "p.pflow"), "triage", "-i", "  "])
    out = capsys.readouterr().out
    assert code == 0 and "→ empty" in out and "len(strip(ticket)) == 0" in out


def test_rule_when_in_the_header_and_the_body_is_an_error(project):
    text = BODY_WHEN.replace("expert outage {", 'expert outage when ticket == "x" {')
    with pytest.raises(pf.CompileError) as info:
        load(project, text)
    [d] = info.value.diagnostics
    assert d.message == ("expert 'outage' has `when` both after its name and in its body: "
                         "keep one")
    assert (d.span.line, d.span.col) == (9, 5)  # the body's `when`


def test_rule_when_in_the_body_of_a_non_rule_route_is_an_error(project):
    text = BODY_WHEN.replace("by rule", "by llm")
    with pytest.raises(pf.CompileError) as info:
        load(project, text)
    messages = [(d.span.line, d.message) for d in info.value.diagnostics]
    assert [line for line, m in messages if m == "`when` is only used by `by rule`"] == [7, 9, 12]


# ------------------------------------------------------------------ errors


def test_route_failures_are_run_errors(project):
    text = '''
model default = "echo"
model picker = "echo"
route pick(ticket: str) -> str {
  by llm
  model picker
  expert billing { instruction "Invoices." }
  expert technical { instruction "Computers." }
}
'''
    program = load(project, text)
    scripted = ScriptedBackend("picker", ["nobody", "no one", "none"])
    with pytest.raises(RunFailed) as info:
        program.run("pick", config=cfg(project, backends={"picker": scripted}), ticket="x")
    assert "did not name an expert after 3 attempts" in info.value.message
    assert "billing, technical" in info.value.message
    system, user = scripted.calls[0].messages
    assert "Experts:" in user.content and "- billing: Invoices." in user.content
    assert user.content.rstrip().endswith("Reply with one of: billing, technical.")
    router = next(s for s in info.value.trace.steps if s.kind == "router")
    assert router.status == "failed" and router.attempts == 3


# ------------------------------------------------------------------ explain


def test_explain_embedding_table_and_json(project, capsys):
    load(project, EMBED_ROUTE.format(extra="", embed=""))
    code = cli.main(["route", "explain", str(project / "p.pflow"), "answer", "--input",
                     "What is 5 plus 7?"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("→ arithmetic") for line in lines)
    assert any(line.startswith("  capitals") for line in lines)
    assert "cosine distance" in lines[0] and lines[-1] == "chosen: arithmetic"
    code = cli.main(["route", "explain", str(project / "p.pflow"), "answer", "-i",
                     "What is the capital of Chile?", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["chosen"] == "capitals"
    assert [r["expert"] for r in report["experts"]] == ["capitals", "arithmetic"]  # nearest first
    assert all(isinstance(r["distance"], float) for r in report["experts"])


def test_explain_rule_route_and_usage_errors(capsys):
    path = str(REPO / "examples" / "routing" / "router.pflow")
    code = cli.main(["route", "explain", path, "help_desk", "-i", "MY ORDER NEVER CAME"])
    out = capsys.readouterr().out
    assert code == 0
    assert "→ shouting  yes" in out and "  refund    no" in out and "(default)" in out
    assert cli.main(["route", "explain", path, "general", "-i", "x"]) == 2
    assert "'general' is not a route" in capsys.readouterr().err
    assert cli.main(["route", "explain", path, "answer"]) == 2  # --input is required


# ------------------------------------------------------------------ optimize

OPT = '''
model default = "echo"
route solve(question: str) -> str {
  by rule
  expert add when question contains "plus" {
    instruction "Answer."
    demos "add.jsonl"
  }
  expert upper when question contains "shout" {
    instruction "Answer."
    demos "upper.jsonl"
  }
  expert other -> general
}
prompt general(question: str) -> str = "{{ question }}"
'''


def opt_project(project: Path) -> Path:
    jsonl(project / "add.jsonl", [("1 plus 1", "2")])
    jsonl(project / "upper.jsonl", [("shout hi", "HI")])
    jsonl(project / "train.jsonl", [("2 plus 3", "5"), ("shout yes", "YES")])
    jsonl(project / "eval.jsonl", [("4 plus 4", "8"), ("shout ok", "OK"), ("what", "?")])
    return project


def test_optimizer_keeps_the_best_instruction_per_region(project):
    from promptflow_dsl.kinds.route.emit import write_optimized
    from promptflow_dsl.kinds.route.optimizer import BudgetedContext, Options, optimize

    opt_project(project)
    program = load(project, OPT)
    h = program.handler("solve")
    # call order: baselines (add, upper), then round 1: propose add, score add, propose
    # upper, score upper
    scripted = ScriptedBackend("default", ["7", "ok", "Add the two numbers.", "8",
                                           "Whisper it.", "ok"])
    train = [json.loads(x) for x in (project / "train.jsonl").read_text().splitlines()]
    evaluation = [json.loads(x) for x in (project / "eval.jsonl").read_text().splitlines()]

    async def go():
        config = RunConfig(cache=CacheMode.OFF, write_trace=False, backends={"default": scripted})
        async with open_context(program, config, context_class=BudgetedContext) as ctx:
            return await optimize(ctx, h, train, evaluation, Options(budget=50, candidates=1))

    result = asyncio.run(go())
    by = {r.name: r for r in result.results}
    assert by["add"].region == 1 and by["add"].baseline == 0.0 and by["add"].score == 1.0
    assert by["add"].best == "Add the two numbers." and by["add"].changed
    assert by["upper"].baseline == 1.0 and by["upper"].best == "Answer."  # the baseline wins ties
    assert by["other"].skipped == "delegates to a handler"
    assert result.calls == 6 and not result.exhausted
    assert result.train_routed == {"add": 1, "upper": 1, "other": 0}
    propose = scripted.calls[2].messages[-1].content
    assert "Input: shout" in propose and "plus" not in propose  # from the other experts' demos
    scored = scripted.calls[3].messages
    assert scored[0].content == "Add the two numbers." and scored[-1].content == "4 plus 4"
    paths = write_optimized(program, result, project / "solve.opt.pflow", train=2, evaluation=3,
                            match="exact")
    text = paths[0].read_text()
    assert 'expert add when question contains "plus" {' in text
    assert 'instruction "Add the two numbers."' in text and 'demos "solve.opt.add.jsonl"' in text
    assert "expert other -> general" in text and "score 0.00 -> 1.00" in text
    again = pf.load(paths[0])  # the written file checks
    assert again.handler("solve").details.experts["add"].instruction == "Add the two numbers."


def test_optimizer_budget_stops_the_search(project):
    from promptflow_dsl.kinds.route.optimizer import BudgetedContext, Options, optimize

    opt_project(project)
    program = load(project, OPT)
    scripted = ScriptedBackend("default", ["7", "ok", "Add.", "8", "x", "y"])

    async def go():
        config = RunConfig(cache=CacheMode.OFF, write_trace=False, backends={"default": scripted})
        async with open_context(program, config, context_class=BudgetedContext) as ctx:
            return await optimize(ctx, program.handler("solve"), [], [{"input": "1 plus 2",
                                  "output": "3"}], Options(budget=2, candidates=3))

    result = asyncio.run(go())
    assert result.exhausted and result.calls == 2 and len(scripted.calls) == 2
    assert {r.name: r.best for r in result.results}["add"] == "Answer."


def test_optimize_command_end_to_end(project, capsys):
    opt_project(project)
    load(project, OPT)
    # echo replies with the input: "contains" matches when the output is inside the input
    jsonl(project / "eval.jsonl", [("4 plus 4 is 8", "8"), ("shout OK", "OK")])
    code = cli.main(["optimize", str(project / "p.pflow"), "solve", "--train",
                     str(project / "train.jsonl"), "--eval", str(project / "eval.jsonl"),
                     "--match", "contains", "--budget", "20", "--candidates", "1", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    written = project / "p.optimized.pflow"
    assert written.exists() and (project / "p.optimized.add.jsonl").exists()
    assert "wrote" in out and "add" in out
    pf.load(written)
    code = cli.main(["optimize", str(project / "p.pflow"), "solve", "--train",
                     str(project / "nope.jsonl"), "--eval", str(project / "eval.jsonl")])
    assert code == 2 and "cannot read training file" in capsys.readouterr().err
    (project / "bad.jsonl").write_text('{"input": "a", "output": "b"}\n{"input": 3, "output": "c"}\n')
    code = cli.main(["optimize", str(project / "p.pflow"), "solve", "--train",
                     str(project / "bad.jsonl"), "--eval", str(project / "eval.jsonl")])
    assert code == 2 and 'bad.jsonl line 2: "input" must be a string' in capsys.readouterr().err


def test_progress_line():
    import io

    from promptflow_dsl.cli.optimize import ProgressLine

    buf = io.StringIO()
    bar = ProgressLine(10, buf, width=10)
    bar.update(5, "expert_1: candidate 1/4", force=True)
    assert buf.getvalue().endswith("[#####-----] 5/10 calls  expert_1: candidate 1/4")
    bar.clear()
    assert buf.getvalue().endswith("\r\x1b[2K")


def test_optimizer_matching():
    from promptflow_dsl.kinds.route.optimizer import clean_instruction, matches

    assert matches("Paris.", "paris", "exact") and not matches("Paris, France", "paris", "exact")
    assert matches("It is Paris, France", "paris", "contains")
    assert matches({"a": 1}, {"a": 1}, "exact") and matches(42, "42", "exact")
    assert clean_instruction('Instruction: "Add the numbers."') == "Add the numbers."


def test_checker_records_route_facts(project):
    program = load(project, EMBED_ROUTE.format(extra="", embed=""))
    d = program.handler("answer").details
    assert d.by == "embedding" and d.retries == 2
    assert d.experts["arithmetic"].demos[0] == {"input": MATH[0][0], "output": "42"}



def test_bench_with_a_litellm_embedding_model(fake_openai, monkeypatch, capsys):
    monkeypatch.setenv("PFLOW_FAKE_KEY", "sk-fake-key-0123456789")
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import route_eval
    finally:
        sys.path.remove(str(REPO / "bench"))
    code = route_eval.main(["--embed-model", "openai/text-embedding-fake", "--api-base",
                            fake_openai.base_url, "--api-key-env", "PFLOW_FAKE_KEY",
                            "--no-cache", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["heldout"] == 96
    assert report["embedder"] == "model 'emb' (openai/text-embedding-fake)"
    assert [len(r["body"]["input"]) for r in fake_openai.requests] == [88, 96]


def test_reference_pflow_blocks_check_and_their_tests_pass(tmp_path, capsys):
    import shutil

    blocks = pflow_blocks(REPO / "docs" / "techniques" / "route.md")
    assert len(blocks) >= 5
    (tmp_path / "pflow.toml").write_text("")
    shutil.copytree(REPO / "examples" / "routing" / "data", tmp_path / "data")
    jsonl(tmp_path / "auto.optimized.expert_1.jsonl", MATH)
    check_blocks(blocks, tmp_path, capsys)
