"""Getting a route ready to choose: its experts, its embedder and its centroids.

:func:`prepare` runs once per route and run (the runtime keeps the result on the run
context): it reads the route's spec, picks the embedder (the route's ``embed`` model,
else the offline embedder fitted on the route's demo inputs), assigns automatic
experts (k-means, cached: see ``kmeans.py``), and embeds every demo through the
embedding cache to place one centroid per expert.  Routers that do not embed
(``by llm``, ``by rule``) only get their spec.

**Centroids.**
An expert's centroid is the mean of its demos' (unit) embedding vectors.  The
distance from an input is the **cosine distance** ``1 - cos(input, centroid)``
(0 = same direction, 1 = unrelated, up to 2 = opposite): it ignores vector length,
which for the offline embedder and most embedding models carries no meaning, and it
does not favour an expert whose demos are spread out (whose centroid is short).
``euclidean`` (the distance between the unit input and the centroid) is available
to library users.  Ties go to the expert written first.

**``protocol mop``** (Mixture-of-Prompts' reference behaviour): every text is embedded
as ``Input: x\nOutput: `` (MoP's demo template with an empty output); automatic
experts are clustered by :func:`~.kmeans.assign_mop` on the raw vectors and get
|D| // max_k demos each (:func:`~.kmeans.mop_partition`); an input goes to the nearest
centre by Euclidean distance between raw vectors (``kmeans.predict``: the k-means
centres for automatic experts, the mean of the demo vectors for written ones).  The
mean of each expert's shown demos' vectors is kept as its *region centre* (what
``pflow optimize`` pads a small region with, by cosine similarity).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import EmbeddingCache, default_embedding_dir
from .embedders import Embedder, ModelEmbedder, OfflineEmbedder
from .experts import Expert, RouteSpec, auto_experts, route_spec
from .kmeans import (
    ALGORITHM_VERSION,
    MOP_TEMPLATE,
    PENALTY,
    Assignment,
    MopClusters,
    assign,
    assign_mop,
    mop_partition,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...runtime.context import RunContext

_assignments: dict[str, Assignment] = {}  # in-memory layer of the cluster cache

METRICS = ("cosine", "euclidean", "euclidean-raw")


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        n = float(np.linalg.norm(x))
        return x / n if n > 0 else x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


@dataclass
class Centroids:
    """Expert names and their centroids (one row each)."""

    names: list[str]
    matrix: np.ndarray
    metric: str = "cosine"

    @classmethod
    def from_groups(cls, groups: dict[str, np.ndarray], metric: str = "cosine") -> Centroids:
        """Centroids of groups of demo vectors (name -> rows), in the order given."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r} (expected {', '.join(METRICS)})")
        names = list(groups)
        scale = (lambda v: np.asarray(v, dtype=np.float64)) if metric == "euclidean-raw" else unit
        rows = [scale(np.asarray(v)).mean(axis=0) for v in groups.values()]
        return cls(names, np.stack(rows) if rows else np.zeros((0, 0)), metric)

    def distances(self, vector: np.ndarray) -> dict[str, float]:
        """Distance from ``vector`` to every centroid, by expert name."""
        q = np.asarray(vector, dtype=np.float64).reshape(-1)
        if self.metric == "euclidean-raw":  # MoP: kmeans.predict on the raw vectors
            d = np.linalg.norm(self.matrix - q[None, :], axis=1)
            return {n: float(round(v, 6)) for n, v in zip(self.names, d.tolist(), strict=True)}
        q = unit(q)
        if self.metric == "cosine":
            c = unit(self.matrix)
            d = 1.0 - c @ q
        else:
            d = np.linalg.norm(self.matrix - q[None, :], axis=1)
        return {n: float(round(v, 6)) for n, v in zip(self.names, d.tolist(), strict=True)}

    def nearest(self, vector: np.ndarray) -> tuple[str, dict[str, float]]:
        """(name of the nearest expert, all distances)."""
        dist = self.distances(vector)
        best = min(self.names, key=lambda n: (dist[n], self.names.index(n)))
        return best, dist


@dataclass
class PreparedRoute:
    """A route ready to choose: the experts (automatic ones assigned), and for
    ``by embedding`` the embedder, the centroids and the cache the input goes through."""

    spec: RouteSpec
    cache: EmbeddingCache
    embedder: Embedder | None = None
    centroids: Centroids | None = None
    assignment: Assignment | None = None
    clusters: MopClusters | None = None  # protocol mop, automatic experts
    region_centres: dict[str, np.ndarray] | None = None  # protocol mop
    trimmed: list[dict[str, Any]] = field(default_factory=list)  # protocol mop: rows not shown

    @property
    def mop(self) -> bool:
        return self.spec.protocol == "mop"

    def text_of(self, text: str) -> str:
        """The text embedded for an input (MoP's template under ``protocol mop``)."""
        return MOP_TEMPLATE.format(input=text) if self.mop else text

    @property
    def experts(self) -> list[Expert]:
        return self.spec.experts

    async def embed(self, text: str) -> np.ndarray:
        """The input's vector (through the cache)."""
        assert self.embedder is not None
        return (await self.cache.embed(self.embedder, [self.text_of(text)]))[0]

    async def distances(self, text: str) -> tuple[str, dict[str, float]]:
        """(nearest expert, distance to every expert) for an input."""
        assert self.centroids is not None
        return self.centroids.nearest(await self.embed(text))


def embedding_cache_for(ctx: RunContext) -> EmbeddingCache:
    """The run's embedding cache: on disk beside the response cache, mode as the run's."""
    return EmbeddingCache(default_embedding_dir(ctx.program.root), ctx.config.cache)


def cluster_key(embedder_id: str, inputs: list[str], max_k: int) -> str:
    blob = json.dumps([ALGORITHM_VERSION, embedder_id, max_k, PENALTY, inputs],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


async def assign_auto(spec: RouteSpec, embedder: Embedder, cache: EmbeddingCache
                      ) -> Assignment:
    """The cluster of each automatic demo row: from memory, from disk, or computed now."""
    inputs = [str(r["input"]) for r in spec.auto_rows or []]
    key = cluster_key(embedder.id, inputs, spec.auto_max_k)
    found = _assignments.get(key)
    if found is None:
        data = cache.load_json(key)
        if data is not None and len(data.get("labels") or []) == len(inputs):
            found = Assignment(int(data["k"]), [int(x) for x in data["labels"]],
                               {int(k): float(v) for k, v in (data.get("criterion") or {}).items()},
                               {int(k): float(v) for k, v in (data.get("inertia") or {}).items()},
                               str(data.get("backend") or "cache"))
    if found is None:
        vectors = await cache.embed(embedder, inputs)
        found = assign(vectors, spec.auto_max_k)
        cache.store_json(key, {"k": found.k, "labels": found.labels,
                               "criterion": {str(k): v for k, v in found.criterion.items()},
                               "inertia": {str(k): v for k, v in found.inertia.items()},
                               "backend": found.backend, "embedder": embedder.id,
                               "file": spec.auto_path})
    _assignments[key] = found
    return found


def make_embedder(ctx: RunContext, spec: RouteSpec, corpus: list[str]) -> Embedder:
    """The route's ``embed`` model, else the offline embedder fitted on ``corpus``."""
    if spec.embed:
        return ModelEmbedder(ctx, spec.h, spec.embed)
    return OfflineEmbedder.fit(corpus)


async def prepare(ctx: RunContext, h: HandlerInfo, *, embedder: Embedder | None = None,
                  metric: str = "cosine") -> PreparedRoute:
    """Prepare route ``h`` (see the module docstring).  Model failures raise ``RunError``."""
    spec = route_spec(h, ctx.program.display_name(h.key))
    prep = PreparedRoute(spec, embedding_cache_for(ctx))
    if spec.by != "embedding":
        return prep
    if spec.auto_rows is not None:
        corpus = [str(r["input"]) for r in spec.auto_rows]
    else:
        corpus = [t for e in spec.experts for t in e.inputs]
    if spec.protocol == "mop":
        corpus = [prep.text_of(t) for t in corpus]
    prep.embedder = embedder or make_embedder(ctx, spec, corpus)
    if spec.protocol == "mop":
        await place_mop(prep)
        return prep
    if spec.auto_rows is not None:
        prep.assignment = await assign_auto(spec, prep.embedder, prep.cache)
        spec.experts = auto_experts(spec, prep.assignment.labels)
    await place(prep, metric)
    return prep


async def place(prep: PreparedRoute, metric: str = "cosine") -> None:
    """Embed every expert's demo inputs (one batch, through the cache) and set the centroids."""
    assert prep.embedder is not None
    experts = [e for e in prep.spec.experts if e.demos]
    texts = [t for e in experts for t in e.inputs]
    vectors = await prep.cache.embed(prep.embedder, texts)
    groups: dict[str, np.ndarray] = {}
    start = 0
    for e in experts:
        groups[e.name] = vectors[start:start + len(e.demos)]
        start += len(e.demos)
    prep.centroids = Centroids.from_groups(groups, metric)


async def place_mop(prep: PreparedRoute, seed: int = 0) -> None:
    """``protocol mop``: cluster automatic experts and assign their demos as MoP does,
    then set the raw Euclidean centres and the region centres (see the module docstring)."""
    assert prep.embedder is not None
    spec = prep.spec
    if spec.auto_rows is not None:
        rows = spec.auto_rows
        vectors = np.asarray(await prep.cache.embed(prep.embedder, [prep.text_of(str(r["input"]))
                                                                   for r in rows]), dtype=np.float64)
        clusters = assign_mop(vectors, spec.auto_max_k, seed=seed)
        part = mop_partition(clusters.labels, clusters.k, spec.auto_max_k, seed=seed)
        # expert_{j+1} is k-means label j (MoP keeps scikit-learn's numbering)
        experts = [replace(e, demos=tuple(rows[i] for i in idx)) for e, idx in
                   zip(auto_experts(spec, [*range(clusters.k), *[0] * (len(rows) - clusters.k)]),
                       part.indices, strict=True)]
        spec.experts = experts
        prep.clusters = clusters
        prep.trimmed = [rows[i] for i in part.trimmed]
        prep.centroids = Centroids([e.name for e in experts], np.asarray(clusters.centers),
                                   "euclidean-raw")
        prep.region_centres = {e.name: (vectors[idx].mean(axis=0) if idx else
                                        np.asarray(clusters.centers[j]))
                               for j, (e, idx) in enumerate(zip(experts, part.indices, strict=True))}
        return
    experts = [e for e in spec.experts if e.demos]
    texts = [prep.text_of(t) for e in experts for t in e.inputs]
    vectors = np.asarray(await prep.cache.embed(prep.embedder, texts), dtype=np.float64)
    groups: dict[str, np.ndarray] = {}
    start = 0
    for e in experts:
        groups[e.name] = vectors[start:start + len(e.demos)]
        start += len(e.demos)
    prep.centroids = Centroids.from_groups(groups, "euclidean-raw")
    prep.region_centres = {n: g.mean(axis=0) for n, g in groups.items()}
