"""Embedders for ``by embedding`` routes: the built-in offline one and declared models.

An embedder has an ``id`` (everything that decides its vectors: the cache key) and
``async embed(texts) -> numpy array`` (one row per text).  Rows are compared with
cosine distance (see ``prepare.py``), so their length does not matter.

:class:`OfflineEmbedder` needs no model file and no network.  Each text becomes a
bag of hashed features in three groups:

- words: lower-cased letter runs, every digit run as the one token ``<num>``, and
  each other symbol (``+``, ``*``, ``%``, ``?``...) as a token of its own; English
  function words ("a", "the", "how", "with"...) count at 0.4 of a content word: they
  carry the form of a request (a question, a command, a story) but must not outvote
  the words that carry its topic;
- word bigrams (over the same tokens);
- character 3- to 5-grams of each content word of four letters or more, with boundary
  marks (``<cap``, ``ital>``), which match related word forms (``capital`` /
  ``capitals``, ``multiply`` / ``multiplied``, ``IndexError`` / ``TypeError``).

A feature's weight is ``(1 + log tf) * idf`` with the smoothed inverse document
frequency ``log((1 + N) / (1 + df)) + 1`` over the corpus the embedder is fitted on
(a route's demo inputs).  Features are hashed into ``dims`` signed buckets; each group
is normalised on its own, weighted (words 1.0, bigrams 0.5, character n-grams 0.8)
and the whole vector is L2-normalised.  The fitted document frequencies are part of
the id.  ``bench/route_eval.py`` measures how well it routes.

:class:`ModelEmbedder` embeds through a model declared with ``embed``
(``model emb = "openai/text-embedding-3-small" embed``) by way of
``RunContext.embed``, in batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...runtime.context import RunContext

OFFLINE_VERSION = 2
DEFAULT_DIMS = 1 << 13
GROUP_WEIGHTS = {"w": 1.0, "b": 0.5, "c": 0.8}
STOP_WEIGHT = 0.4  # a function word's share of the word group, relative to a content word
CHAR_NGRAMS = (3, 4, 5)
CHAR_MIN_LETTERS = 4
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers him his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours out over own same she
should so some such than that the their theirs them then there these they this those through
to too under until up very was we were what when where which while who whom why will with
would you your yours
""".split())
EMBED_BATCH = 128

_TOKEN = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)*|[^\w\s]")


class Embedder(Protocol):
    """Something that turns texts into vectors."""

    id: str
    label: str  # how `explain` and the docs name it

    async def embed(self, texts: list[str]) -> np.ndarray: ...


def tokens(text: str) -> list[str]:
    """The word tokens of ``text``: lower-cased letter runs, ``<num>``, single symbols."""
    out = []
    for t in _TOKEN.findall(text.lower()):
        out.append("<num>" if t[0].isdigit() else t)
    return out


def features(text: str) -> Counter[str]:
    """Every feature of ``text`` with its count; the first letter names the group:
    ``w`` content word, ``s`` function word, ``b`` bigram, ``c`` character n-gram."""
    toks = tokens(text)
    feats: Counter[str] = Counter()
    for t in toks:
        if t in STOP_WORDS:
            feats["s" + t] += 1
            continue
        feats["w" + t] += 1
        if t[0].isalpha() and len(t) >= CHAR_MIN_LETTERS:
            padded = f"<{t}>"
            for n in CHAR_NGRAMS:
                for i in range(len(padded) - n + 1):
                    feats["c" + padded[i:i + n]] += 1
    for a, b in zip(toks, toks[1:], strict=False):
        feats[f"b{a} {b}"] += 1
    return feats


def _bucket(feature: str, dims: int) -> tuple[int, float]:
    h = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h[:7], "little") % dims, (1.0 if h[7] & 1 else -1.0)


class OfflineEmbedder:
    """See the module docstring.  Use :meth:`fit` to weight features by a corpus."""

    label = "offline (hashed word + character n-gram TF-IDF)"

    def __init__(self, dims: int = DEFAULT_DIMS, df: dict[str, int] | None = None,
                 n_docs: int = 0) -> None:
        self.dims = dims
        self.df = dict(df or {})
        self.n_docs = n_docs
        table = json.dumps([OFFLINE_VERSION, dims, n_docs, sorted(self.df.items()),
                            sorted(GROUP_WEIGHTS.items()), STOP_WEIGHT, CHAR_NGRAMS,
                            CHAR_MIN_LETTERS, sorted(STOP_WORDS)], separators=(",", ":"))
        self.id = f"offline-v{OFFLINE_VERSION}-{dims}-" + hashlib.sha256(table.encode()).hexdigest()[:20]
        self._max_idf = math.log(1 + n_docs) + 1.0
        self.calls = 0  # embed() calls that computed vectors
        self.texts = 0  # texts embedded

    @classmethod
    def fit(cls, corpus: Iterable[str], dims: int = DEFAULT_DIMS) -> OfflineEmbedder:
        """An embedder whose inverse document frequencies come from ``corpus``."""
        df: Counter[str] = Counter()
        n = 0
        for text in corpus:
            n += 1
            df.update(set(features(text)))
        return cls(dims, dict(df), n)

    def idf(self, feature: str) -> float:
        df = self.df.get(feature)
        if df is None:
            return self._max_idf
        return math.log((1 + self.n_docs) / (1 + df)) + 1.0

    def vector(self, text: str) -> np.ndarray:
        """The unit vector of one text (the zero vector for a text with no features)."""
        groups = {g: np.zeros(self.dims, dtype=np.float64) for g in "wsbc"}
        for feat, tf in features(text).items():
            i, sign = _bucket(feat, self.dims)
            groups[feat[0]][i] += sign * (1.0 + math.log(tf)) * self.idf(feat)
        groups["w"] += STOP_WEIGHT * groups.pop("s")
        out = np.zeros(self.dims, dtype=np.float64)
        for g, vec in groups.items():
            norm = float(np.linalg.norm(vec))
            if norm > 0:
                out += GROUP_WEIGHTS[g] * vec / norm
        norm = float(np.linalg.norm(out))
        return (out / norm if norm > 0 else out).astype(np.float32)

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts])


class ModelEmbedder:
    """Embeddings from a model declared with ``embed``, called through the run context
    (its limits, its transport and its errors: a failure is a ``RunError``)."""

    def __init__(self, ctx: RunContext, h: HandlerInfo, model_name: str) -> None:
        self.ctx = ctx
        self.h = h
        self.model_name = model_name
        model_id, _, params = ctx.backend_for(h, model_name)
        self.model_id = model_id
        base = params.get("api_base") or ""
        self.id = "model-" + hashlib.sha256(f"{model_id}\n{base}".encode()).hexdigest()[:20]
        self.label = f"model '{model_name}' ({model_id})"
        self.calls = 0  # requests sent to the model
        self.texts = 0

    async def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start:start + EMBED_BATCH]
            self.calls += 1
            self.texts += len(batch)
            vectors, _, _ = await self.ctx.embed(self.h, self.model_name, batch)
            rows.extend(vectors)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(rows, dtype=np.float32)

