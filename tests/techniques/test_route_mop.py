"""`protocol mop` on a route: Mixture-of-Prompts' clustering (raw vectors, K chosen by
its criterion, `n_init='auto'`), `Input: x\\nOutput: ` embedding text, |D|//K demos per
expert (sampled or tiled), routing by `kmeans.predict`, and its joint instruction search
(pooled candidates, global pre-selection, padded regions) in `pflow optimize`.  Every
expected value is computed here from the published rules, with the built-in offline
embedder and a rule-following test model."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

import promptflow_dsl as pf
from promptflow_dsl.kinds.route import kmeans
from promptflow_dsl.kinds.route import prepare as prepare_mod
from promptflow_dsl.kinds.route.cache import clear_memory
from promptflow_dsl.kinds.route.embedders import OfflineEmbedder
from promptflow_dsl.kinds.route.mop_search import complements, padded_region, preselect
from promptflow_dsl.kinds.route.optimizer import (
    BudgetedContext,
    Options,
    compare,
    optimize,
    split_holdout,
    wilson,
)
from promptflow_dsl.kinds.route.prepare import Centroids
from promptflow_dsl.kinds.route.run import prepared_route
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.session import open_context

WORDS = ["cat", "dog", "house", "tree", "river", "apple", "chair", "bird", "stone", "cloud",
         "lamp", "book"]


def jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))


def sums(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        out.append((f"{a} plus {b}", str(a + b)))
    return out


def plurals(words: list[str]) -> list[tuple[str, str]]:
    return [(f"plural of {w}", w + "s") for w in words]


def differences(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        out.append((f"{a} minus {b}", str(a - b)))
    return out


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    clear_memory()
    prepare_mod._assignments.clear()
    monkeypatch.setenv("PFLOW_EMBED_CACHE_DIR", str(tmp_path / "embeddings"))
    yield
    clear_memory()


ROUTE = '''
model default = "echo"
route solve(question: str) -> str {
  by embedding
  protocol mop
  experts auto from "train.jsonl" max MAXK
}
'''


def program(tmp_path: Path, rows, max_k: int):
    (tmp_path / "pflow.toml").write_text("")
    jsonl(tmp_path / "train.jsonl", rows)
    path = tmp_path / "p.pflow"
    path.write_text(ROUTE.replace("MAXK", str(max_k)))
    return pf.load(path)


async def _prep(prog, backend=None):
    backends = {"default": backend} if backend is not None else {}
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, backends=backends)
    async with open_context(prog, config) as ctx:
        return await prepared_route(ctx, prog.handler("solve"))


def reference_clusters(texts: list[str], max_k: int, seed: int = 0):
    """MoP's `chooseBestKforKMeansParallel` + final `KMeans` fit, written from its rules."""
    from sklearn.cluster import KMeans

    emb = OfflineEmbedder.fit(texts)
    x = np.stack([emb.vector(t) for t in texts]).astype(np.float64)
    inertia_1 = float(np.square(x - x.mean(axis=0)).sum())
    crit = {}
    for k in range(2, max(3, min(max_k, len(x)) + 1)):
        km = KMeans(n_clusters=k, n_init="auto", random_state=seed).fit(x)
        crit[k] = km.inertia_ / inertia_1 + 0.02 * k
    best = min(crit, key=lambda k: (crit[k], k))
    km = KMeans(n_clusters=best, n_init="auto", random_state=seed).fit(x)
    return best, km, x


def test_protocol_mop_clusters_as_the_reference(tmp_path):
    pytest.importorskip("sklearn")
    rows = sums(7, 1) + plurals(WORDS[:6]) + [(f"say {w} twice", f"{w} {w}") for w in WORDS[:5]]
    prog = program(tmp_path, rows, 4)
    assert prog.handler("solve").details.protocol == "mop"
    prep = asyncio.run(_prep(prog))
    texts = [f"Input: {i}\nOutput: " for i, _ in rows]
    best, km, x = reference_clusters(texts, 4)
    assert prep.clusters is not None and prep.clusters.k == best
    assert prep.clusters.labels == km.labels_.tolist()  # scikit-learn's numbering, kept
    assert np.allclose(prep.clusters.centers, km.cluster_centers_)
    # n_init='auto' is one k-means++ run in scikit-learn
    assert kmeans.n_init_auto() == 1 and kmeans.n_init_auto("random") == 10
    from sklearn.cluster import KMeans
    assert KMeans(n_clusters=2, n_init="auto", random_state=0).fit(x)._n_init == 1
    # the embedded text is MoP's template with an empty output
    assert prep.text_of("3 plus 4") == "Input: 3 plus 4\nOutput: "
    assert list(kmeans.mop_k_range(4, 18)) == [2, 3, 4] and list(kmeans.mop_k_range(2, 18)) == [2]


def test_protocol_mop_demo_counts_sampled_or_tiled(tmp_path):
    pytest.importorskip("sklearn")
    rows = sums(7, 1) + plurals(WORDS[:2]) + [(f"say {w} twice", f"{w} {w}") for w in WORDS[:9]]
    prog = program(tmp_path, rows, 4)
    prep = asyncio.run(_prep(prog))
    assert prep.clusters is not None
    labels = prep.clusters.labels
    size = len(rows) // 4  # |D| // max K, not // the K chosen
    assert size == 4
    assert all(len(e.demos) == size for e in prep.experts)
    # the reference assignment: one seeded generator, clusters in label order
    rng = random.Random(0)
    expected, trimmed = [], []
    for j in range(prep.clusters.k):
        members = [i for i, lab in enumerate(labels) if lab == j]
        if len(members) > size:
            kept = rng.sample(members, size)
            trimmed += sorted(set(members) - set(kept))
        else:
            kept = (members * size)[:size]
        expected.append([rows[i][0] for i in kept])
    assert [[d["input"] for d in e.demos] for e in prep.experts] == expected
    assert sorted(r["input"] for r in prep.trimmed) == sorted(rows[i][0] for i in trimmed)
    plural = next(e for e in prep.experts if "plural" in e.demos[0]["input"])
    assert [d["input"] for d in plural.demos] == ["plural of cat", "plural of dog"] * 2  # tiled
    part = kmeans.mop_partition([0] * 7 + [1] * 2 + [2] * 9, 3, 4)
    rng = random.Random(0)
    assert part.size == 4 and part.indices[1] == [7, 8, 7, 8]
    assert part.indices[0] == rng.sample(range(7), 4)
    assert part.indices[2] == rng.sample(range(9, 18), 4)
    assert len(part.trimmed) == 3 + 5


def test_protocol_mop_routes_by_kmeans_predict(tmp_path):
    pytest.importorskip("sklearn")
    rows = sums(7, 1) + plurals(WORDS[:6]) + [(f"say {w} twice", f"{w} {w}") for w in WORDS[:5]]
    prog = program(tmp_path, rows, 4)
    prep = asyncio.run(_prep(prog))
    _, km, _ = reference_clusters([f"Input: {i}\nOutput: " for i, _ in rows], 4)
    emb = prep.embedder
    for text in ["12 plus 30", "plural of horse", "say moon twice", "what is this", "plural 3"]:
        expected = int(km.predict(emb.vector(f"Input: {text}\nOutput: ")[None].astype(np.float64))[0])
        name, dist = asyncio.run(prep.distances(text))
        assert name == f"expert_{expected + 1}", text
        assert min(dist, key=dist.get) == name


def test_euclidean_to_centres_and_cosine_to_unit_means_can_disagree():
    groups = {"a": np.array([[10.0, 0.0], [10.0, 1.0]]), "b": np.array([[0.5, 0.5], [0.5, 0.5]])}
    q = np.array([1.0, 0.1])
    assert Centroids.from_groups(groups, "cosine").nearest(q)[0] == "a"
    raw = Centroids.from_groups(groups, "euclidean-raw")
    assert raw.nearest(q)[0] == "b"
    assert raw.distances(q) == {"a": round(float(np.hypot(9.0, 0.4)), 6),
                                "b": round(float(np.hypot(0.5, 0.4)), 6)}


def test_protocol_mop_is_checked(tmp_path):
    (tmp_path / "pflow.toml").write_text("")
    jsonl(tmp_path / "train.jsonl", sums(4, 1))
    bad = tmp_path / "bad.pflow"
    bad.write_text('route a(q: str) -> str {\n  by rule\n  protocol mop\n  expert x { instruction "x" }\n}\n'
                   'route b(q: str) -> str {\n  by embedding\n  protocol moe\n'
                   '  experts auto from "train.jsonl" max 2\n}\n')
    with pytest.raises(pf.CompileError) as info:
        pf.load(bad)
    text = str(info.value)
    assert "3:12" in text or "`protocol mop` needs `by embedding`" in text
    messages = [d.message for d in info.value.diagnostics]
    assert "`protocol mop` needs `by embedding` (Mixture-of-Prompts routes by the nearest " \
           "k-means centre)" in messages
    assert "unknown protocol 'moe' (expected pflow or mop)" in messages


# ---------------------------------------------------------------- the joint search

def test_search_pieces():
    assert complements(["e1", "e2", "e3"]) == {"e1": ["e2", "e3"], "e2": ["e1"],
                                               "e3": ["e1", "e2"]}
    assert preselect([("b", 0.5), ("a", 0.5), ("c", 0.0), ("d", 0.9)], 2) == ["d", "b", ""]
    assert preselect([("", 0.9), ("x", 0.1)], 1) == [""]
    ev = [{"input": str(i), "output": ""} for i in range(6)]
    rows, added = padded_region([ev[4]], ev, [0.1, 0.9, 0.5, 0.9, 0.2, 0.0], 4)
    assert [r["input"] for r in rows] == ["4", "3", "1", "2"] and added == 3  # ties: later first


class RuleModel(ScriptedBackend):
    """Proposals are "Rule 1", "Rule 2", ... in call order; Rule 1 solves sums, Rule 2
    differences, anything else neither."""

    def __init__(self) -> None:
        super().__init__("rules")
        self.proposals = 0

    def _take(self, kind, messages, prefix, params):
        last = messages[-1].content
        if "What was the instruction?" in last:
            self.proposals += 1
            text = f"Rule {self.proposals}"
        else:
            system = messages[0].content if messages[0].role == "system" else ""
            m = re.fullmatch(r"(\d+) plus (\d+)", last)
            d = re.fullmatch(r"(\d+) minus (\d+)", last)
            if system == "Rule 1" and m:
                text = str(int(m[1]) + int(m[2]))
            elif system == "Rule 2" and d:
                text = str(int(d[1]) - int(d[2]))
            else:
                text = "no idea"
        self.shared.append(text)
        return super()._take(kind, messages, prefix, params)


def search_project(tmp_path: Path):
    rows = sums(8, 1) + differences(8, 1)
    prog = program(tmp_path, rows, 2)
    evaluation = [{"input": i, "output": o} for i, o in sums(6, 2) + differences(6, 3)]
    return prog, rows, evaluation


def run_search(prog, evaluation, options, held=()):
    model = RuleModel()

    async def go():
        config = RunConfig(cache=CacheMode.OFF, write_trace=False, backends={"default": model})
        async with open_context(prog, config, context_class=BudgetedContext) as ctx:
            result = await optimize(ctx, prog.handler("solve"), [], evaluation, options)
            if held:
                result.heldout = await compare(ctx, result, list(held), options.match)
            return result

    return asyncio.run(go()), model


def test_mop_joint_search_pools_preselects_and_assigns(tmp_path):
    pytest.importorskip("sklearn")
    prog, _, evaluation = search_project(tmp_path)
    result, model = run_search(prog, evaluation, Options(budget=1000, candidates=2, n_inits=2,
                                                         region_size=6))
    assert result.protocol == "mop"
    # 2 experts x 2 proposals pooled; each scored zero-shot on all 12 evaluation rows
    assert sorted(result.pool) == [("Rule 1", 0.5), ("Rule 2", 0.5), ("Rule 3", 0.0),
                                   ("Rule 4", 0.0)]
    assert result.preselected == ["Rule 2", "Rule 1", ""]  # ties: later text first
    assert result.preselect_rows == 12 and result.preselect_calls == 4 + 4 * 12
    sums_expert = next(e for e in result.experts if "plus" in e.demos[0]["input"])
    minus_expert = next(e for e in result.experts if "minus" in e.demos[0]["input"])
    assert sums_expert.instruction == "Rule 1" and minus_expert.instruction == "Rule 2"
    by = {r.name: r for r in result.results}
    assert by[sums_expert.name].candidates == [("Rule 2", 0.0), ("Rule 1", 1.0), ("", 0.0)]
    assert by[sums_expert.name].region == 6 and by[sums_expert.name].scored_on == 6
    assert by[sums_expert.name].padded == 0
    assert result.calls == 52 + 2 * 3 * 6 and not result.exhausted
    # proposals come from the complement (expert_1: the others; expert_2: expert_1)
    proposals = [c for c in model.calls if "What was the instruction?" in c.messages[-1].content]
    first, second = result.experts[0], result.experts[1]
    assert first.demos[0]["input"].split()[1] != second.demos[0]["input"].split()[1]
    for call, source in zip(proposals, [second, second, first, first], strict=True):
        word = "plus" if "plus" in source.demos[0]["input"] else "minus"
        assert word in call.messages[-1].content
    # pre-selection is zero-shot; region scoring shows the expert's 8 demos
    scoring = [c for c in model.calls if "What was the instruction?" not in c.messages[-1].content]
    assert all(len(c.messages) == 2 for c in scoring[:48])
    assert all(len(c.messages) == (c.messages[0].role == "system") + 2 * 8 + 1
               for c in scoring[48:])  # the empty instruction sends no system message
    assert result.spending()[1] == ("proposals and pre-selection: 52 calls (4 pooled "
                                    "candidates scored on 12 evaluation rows)")


def test_mop_regions_are_padded_by_similarity(tmp_path):
    pytest.importorskip("sklearn")
    prog, _, evaluation = search_project(tmp_path)
    result, _ = run_search(prog, evaluation, Options(budget=1000, candidates=1, n_inits=1,
                                                     region_size=9))
    for r in result.results:
        assert r.region == 6 and r.padded == 3 and r.scored_on == 9


def test_mop_budget_is_split_so_every_expert_is_scored(tmp_path):
    pytest.importorskip("sklearn")
    prog, _, evaluation = search_project(tmp_path)
    result, _ = run_search(prog, evaluation, Options(budget=30, candidates=2, n_inits=2,
                                                     region_size=20))
    # full cost: proposals 4 + pre-selection 4 x 12, regions 2 x 3 x 12: 30 calls are
    # split in proportion (52 : 72): 12 for the pool, 9 for each expert
    assert result.calls <= 30
    assert result.preselect_calls <= 12
    for r in result.results:
        assert r.share == 9 and r.spent <= 9 and r.scored_on == 3 and r.candidates


def test_pflow_budget_is_split_so_every_expert_is_scored(tmp_path):
    (tmp_path / "pflow.toml").write_text("")
    jsonl(tmp_path / "add.jsonl", [("1 plus 1", "2")])
    jsonl(tmp_path / "up.jsonl", [("shout hi", "HI")])
    path = tmp_path / "r.pflow"
    path.write_text('model default = "echo"\nroute solve(question: str) -> str {\n  by rule\n'
                    '  expert add when question contains "plus" {\n    instruction "Add."\n'
                    '    demos "add.jsonl"\n  }\n  expert up {\n    instruction "Shout."\n'
                    '    demos "up.jsonl"\n  }\n}\n')
    prog = pf.load(path)
    evaluation = [{"input": f"{i} plus {i}", "output": str(2 * i)} for i in range(40)] + \
                 [{"input": f"shout {w}", "output": w.upper()} for w in WORDS[:5]]

    async def go():
        config = RunConfig(cache=CacheMode.OFF, write_trace=False)
        async with open_context(prog, config, context_class=BudgetedContext) as ctx:
            return await optimize(ctx, prog.handler("solve"), [], evaluation,
                                  Options(budget=30, candidates=4))

    result = asyncio.run(go())
    by = {r.name: r for r in result.results}
    # 15 calls each; the 40-row region is scored on a sample of 7 rows, the 5-row one whole
    assert by["add"].share == 15 and by["up"].share == 15
    assert by["add"].scored_on == 7 and by["up"].scored_on == 5
    assert by["add"].baseline is not None and by["up"].baseline is not None
    # add: baseline 7 + (proposal 1 + 7) = 15, the next proposal is refused; up: baseline 5
    # + (1 + 5), then three proposals that repeat the first (echo) and are not scored
    assert by["add"].spent == 15 and by["up"].spent == 14
    assert result.calls == 29 and result.exhausted
    assert result.spending() == [
        "routing the training and evaluation rows: 0 calls",
        "add: 15 of 15 calls, 2 instructions scored on 7 rows",
        "up: 14 of 15 calls, 2 instructions scored on 5 rows"]


def test_win_rate_on_held_back_rows(tmp_path):
    pytest.importorskip("sklearn")
    prog, _, evaluation = search_project(tmp_path)
    search, held = split_holdout(evaluation, 0.25, 0)
    assert len(held) == 3 and len(search) == 9
    assert not {r["input"] for r in held} & {r["input"] for r in search}
    result, _ = run_search(prog, search, Options(budget=1000, candidates=2, n_inits=2,
                                                 region_size=4), held=held)
    w = result.heldout
    assert w is not None and w.n == 3
    assert (w.wins, w.losses, w.ties, w.before, w.after) == (3, 0, 0, 0.0, 1.0)
    assert w.rate == 1.0 and w.calls == 6
    low, high = w.interval
    assert (round(low, 4), high) == (0.4385, 1.0)


def test_wilson_interval():
    low, high = wilson(0.5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson(0.0, 0) == (0.0, 1.0)


def test_optimize_command_reports_spending_and_win_rate(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from promptflow_dsl import cli

    prog, _, evaluation = search_project(tmp_path)
    # the echo model replies with the input: under `contains`, a row counts when its
    # output is in its input
    rows = [(f"{i} plus 1 is {i + 1}", str(i + 1)) for i in range(6)] + \
           [(f"{i} minus 1", str(i - 1)) for i in range(6, 12)]
    jsonl(tmp_path / "eval.jsonl", rows)
    code = cli.main(["optimize", str(tmp_path / "p.pflow"), "solve", "--train",
                     str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl"),
                     "--match", "contains", "--budget", "40", "--candidates", "1", "-q",
                     "--no-cache"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    # 9 search rows, 3 held back; of 40 calls, 40 x 20 / (20 + 90) = 7 go to the pool
    # (2 proposals, 2 candidates x 2 rows), 17 and 16 to the experts (3 instructions x 5 rows)
    assert lines[:5] == [
        "route solve (protocol mop): 30 model calls (budget 40)",
        "  routing the training and evaluation rows: 0 calls",
        "  proposals and pre-selection: 6 calls (2 pooled candidates scored on 2 evaluation rows)",
        "  expert_1: 15 of 17 calls, 3 instructions scored on 5 rows (1 added by similarity)",
        "  expert_2: 15 of 16 calls, 3 instructions scored on 5 rows"]
    assert ("held-back rows: 3 (never seen by the search), 6 model calls: accuracy 0.33 -> 0.33; "
            "against the un-optimized route 0 wins, 0 losses, 3 ties: win rate 0.50 (95% "
            "interval 0.13-0.87)") in lines
    written = (tmp_path / "p.optimized.pflow").read_text()
    assert "  protocol mop\n" in written and "# Held-back rows: 3," in written
    pf.load(tmp_path / "p.optimized.pflow")
    code = cli.main(["optimize", str(tmp_path / "p.pflow"), "solve", "--train",
                     str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl"),
                     "--holdout", "1.5"])
    assert code == 2 and "--holdout must be at least 0 and below 1" in capsys.readouterr().err
    code = cli.main(["optimize", str(tmp_path / "p.pflow"), "solve", "--train",
                     str(tmp_path / "train.jsonl"), "--eval", str(tmp_path / "eval.jsonl"),
                     "--holdout", "0", "-q", "--no-cache", "--budget", "5"])
    out, _ = capsys.readouterr()
    assert code == 0 and "held-back rows: none (--holdout 0): no win rate" in out
