"""Python side of the ``std.decomp`` standard library module (``stdlib/decomp.pflow``).

Sub-task handlers for ``decompose``, after the tasks of the Decomposed Prompting
paper (Khot et al., ICLR 2023).  Each takes the sub-question a decomposer wrote
(``Split ["a", "b", "c"] into two halves.``) and answers it symbolically; the lists
and texts inside a sub-question are JSON, as ``#k`` answers are written into it.
The letter and merge handlers live in ``text_tools.py`` (``std.text``) and are
declared again in ``decomp.pflow``.

Every function is pure except :func:`retrieve`, which reads (and caches) a JSONL
corpus.  Bad input raises :class:`ValueError` with a message meant for the person
who wrote the program.  Nothing here uses ``eval``: arithmetic is evaluated on
Python's ``ast`` with bounded operands.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import threading
from pathlib import Path
from typing import Any

__all__ = ["split_items_q", "halves_q", "reverse_q", "flatten_q", "calc_q", "extract_q",
           "retrieve", "tokenize", "bm25_scores"]

_QUOTED = re.compile(r'"([^"]*)"')


def _need_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}: {value!r}")
    return value


def _json_values(text: str) -> list[tuple[Any, int, int]]:
    """Every JSON list or string in ``text`` (outermost only), with its span."""
    decoder = json.JSONDecoder()
    out: list[tuple[Any, int, int]] = []
    i = 0
    while i < len(text):
        if text[i] in '["':
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            out.append((value, i, end))
            i = end
        else:
            i += 1
    return out


def _first_list(question: str, example: str) -> list[Any]:
    for value, _, _ in _json_values(question):
        if isinstance(value, list):
            return value
    raise ValueError(f"no JSON list found in {question!r}; expected e.g. {example!r}")


# ------------------------------------------------------------------ lists


def split_items_q(question: str) -> list[str]:
    """The items a sub-question names: its first JSON list (non-string items as JSON
    text), else its first double-quoted span split at commas or semicolons (at
    whitespace when it has neither), else the whole question split at whitespace.

    ``'What are the items in "apple, pear, plum"?'`` -> ``["apple", "pear", "plum"]``.
    """
    q = _need_str(question, "question")
    for value, _, _ in _json_values(q):
        if isinstance(value, list):
            return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in value]
    m = _QUOTED.search(q)
    text = m.group(1) if m else q
    for sep in (";", ","):
        if sep in text:
            return [part.strip() for part in text.split(sep) if part.strip()]
    return text.split()


def halves_q(question: str) -> list[list[Any]]:
    """Split the first JSON list of the sub-question into two halves (the first half
    is the shorter one when the length is odd).

    ``'Split ["a", "b", "c"] into two halves.'`` -> ``[["a"], ["b", "c"]]``.
    """
    items = _first_list(_need_str(question, "question"), 'Split ["a", "b"] into two halves.')
    mid = len(items) // 2
    return [items[:mid], items[mid:]]


def reverse_q(question: str) -> list[Any]:
    """The first JSON list of the sub-question in reverse order.

    ``'Reverse ["a", "b", "c"].'`` -> ``["c", "b", "a"]``.
    """
    items = _first_list(_need_str(question, "question"), 'Reverse ["a", "b", "c"].')
    return list(reversed(items))


def flatten_q(question: str) -> list[Any]:
    """The first JSON list of the sub-question flattened one level (items that are not
    lists are kept as they are).

    ``'Flatten [["d", "c"], ["b", "a"]].'`` -> ``["d", "c", "b", "a"]``.
    """
    items = _first_list(_need_str(question, "question"), 'Flatten [["a"], ["b"]].')
    out: list[Any] = []
    for item in items:
        out.extend(item if isinstance(item, list) else [item])
    return out


# ------------------------------------------------------------------ arithmetic

_MAX_EXPR = 200
_MAX_MAGNITUDE = 1e100
_MAX_EXPONENT = 100
_OPS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                         ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv,
                         ast.Mod: operator.mod, ast.Pow: operator.pow}
_EXPR = re.compile(r"[-+(]*\s*\d[\d\s.,+\-*/%()^×÷]*")
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "^": "**"})


def _number(value: float | int) -> float | int:
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > _MAX_MAGNITUDE:
        raise ValueError("the result is too large")
    return value


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _number(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand)
        return v if isinstance(node.op, ast.UAdd) else -v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (
                abs(right) > _MAX_EXPONENT
                or abs(left) > 1 and right > 0 and right * math.log10(abs(left)) > 100):
            raise ValueError(f"the power {left} ** {right} is too large")
        try:
            result = _OPS[type(node.op)](left, right)
            if isinstance(result, complex):
                raise ValueError(f"{left} ** {right} is not a real number")
            return _number(result)
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
        except OverflowError:
            raise ValueError("the result is too large") from None
    raise ValueError("only numbers, + - * / // % ** and parentheses are allowed")


def calc_q(question: str) -> float | int:
    """Evaluate the arithmetic expression in a sub-question: the first run of digits,
    operators (``+ - * / // % **``, also ``^ × ÷``) and parentheses.  Integers stay
    integers; floats are rounded to 12 significant digits, and one that is then a whole
    number becomes an int.  No ``eval``: the
    expression is read with ``ast`` and at most 200 characters, exponents up to 100
    and magnitudes up to 1e100 are allowed.

    ``'What is 3 * (4 + 5)?'`` -> ``27``.
    """
    q = _need_str(question, "question")
    candidates = [m.group(0).strip().rstrip(".,") for m in _EXPR.finditer(q)]
    expr = max(candidates, key=len, default="")
    if not expr:
        raise ValueError(f"no arithmetic expression in {q!r}; expected e.g. 'What is 3 * (4 + 5)?'")
    if len(expr) > _MAX_EXPR:
        raise ValueError(f"the expression is longer than {_MAX_EXPR} characters")
    text = expr.translate(_SYMBOLS).replace(",", "")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot read the expression {expr!r}") from None
    value = _eval(tree)
    if isinstance(value, float):
        value = float(f"{value:.12g}")  # no floating-point noise: 2 ** 0.5 * 2 ** 0.5 -> 2
        if value.is_integer():
            return int(value)
    return value


# ------------------------------------------------------------------ regex extraction

_PATTERN = re.compile(r"`([^`]+)`|(?<![\w/])/((?:\\.|[^/\\])+)/")


def extract_q(question: str) -> str:
    """Answer ``Extract `PATTERN` from TEXT``: the first match of the regular expression
    in backticks (or between slashes) in the text after it — a JSON string, each string
    of a JSON list in order, or else the plain text that follows.  Returns the first
    capture group when the pattern has one, else the whole match.

    ``'Extract `born in (\\w+)` from "Ada was born in London."'`` -> ``"London"``.
    """
    q = _need_str(question, "question")
    m = _PATTERN.search(q)
    if m is None:
        raise ValueError(f"no pattern in {q!r}; write it in backticks: "
                         f"Extract `(\\d+) eggs` from \"...\"")
    pattern = m.group(1) if m.group(1) is not None else m.group(2)
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    rest = q[m.end():]
    values = _json_values(rest)
    if values:
        value = values[0][0]
        texts = ([v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in value]
                 if isinstance(value, list) else [value])
    else:
        texts = [re.sub(r"^\s*(?:from|in|of)\s+", "", rest, flags=re.I)]
    for text in texts:
        found = rx.search(text)
        if found is not None:
            if rx.groups:
                return found.group(1) or ""
            return found.group(0)
    shown = " | ".join(texts)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise ValueError(f"pattern {pattern!r} does not match {shown!r}")


# ------------------------------------------------------------------ retrieval

STOPWORDS = frozenset("""a an and are as at be by did do does for from had has have he her his how
i in is it its of on or she that the their them they this to was were what when where which who
whom whose why will with""".split())
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
K1, B = 1.5, 0.75  # BM25 (the Lucene variant, bm25s' default)
_INDEXES: dict[tuple[str, int, int], tuple[list[dict[str, Any]], Any]] = {}
_LOCK = threading.Lock()


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without English stop words."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


class _PlainBM25:
    """The same scores as ``bm25s.BM25()`` (Lucene BM25, k1=1.5, b=0.75) in pure
    Python: used when bm25s is not installed."""

    def __init__(self, docs: list[list[str]]) -> None:
        self.n = len(docs)
        self.avgdl = sum(map(len, docs)) / self.n if self.n else 0.0
        self.lens = [len(d) for d in docs]
        self.tf: list[dict[str, int]] = []
        df: dict[str, int] = {}
        for d in docs:
            counts: dict[str, int] = {}
            for t in d:
                counts[t] = counts.get(t, 0) + 1
            self.tf.append(counts)
            for t in counts:
                df[t] = df.get(t, 0) + 1
        self.idf = {t: math.log(1 + (self.n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def get_scores(self, query: list[str]) -> list[float]:
        scores = [0.0] * self.n
        for t in query:
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i, counts in enumerate(self.tf):
                tf = counts.get(t, 0)
                if tf:
                    norm = K1 * (1 - B + B * self.lens[i] / self.avgdl) + tf
                    scores[i] += idf * tf / norm
        return scores


def _row_text(row: dict[str, Any]) -> str:
    return " ".join(str(row[f]) for f in ("title", "text") if row.get(f) is not None)


def _index(corpus: str) -> tuple[list[dict[str, Any]], Any]:
    path = Path(corpus).expanduser()
    try:
        stat = path.stat()
    except OSError:
        raise ValueError(f"corpus file not found: {corpus} (a relative path is read from the "
                         f"current directory, {Path.cwd()})") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        if key in _INDEXES:
            return _INDEXES[key]
        rows: list[dict[str, Any]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{corpus}:{n}: not JSON: {exc}") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f'{corpus}:{n}: each line must be an object with a "text" string')
            rows.append(row)
        if not rows:
            raise ValueError(f"corpus {corpus} has no rows")
        docs = [tokenize(_row_text(r)) for r in rows]
        try:
            import bm25s
        except ImportError:
            model: Any = _PlainBM25(docs)
        else:
            model = bm25s.BM25(k1=K1, b=B)
            model.index(docs, show_progress=False)
        _INDEXES[key] = (rows, model)
        return rows, model


def bm25_scores(query: str, corpus: str) -> list[float]:
    """The BM25 score of every row of ``corpus`` for ``query`` (for tests and tuning)."""
    _, model = _index(corpus)
    return [float(s) for s in model.get_scores(tokenize(query))]


def retrieve(question: str, corpus: str, k: int = 3) -> list[str]:
    """The ``text`` of the ``k`` rows of a JSONL corpus that best match ``question``
    under BM25 (over each row's ``title`` and ``text``), best first; rows sharing no
    word with the question are left out, ties keep corpus order.  Uses the ``bm25s``
    library when installed, else the same scoring in pure Python.  A relative
    ``corpus`` path is read from the current directory; the index is built once per
    file version.
    """
    q = _need_str(question, "question")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
        raise ValueError(f"k must be an integer from 1 to 100, got {k!r}")
    rows, model = _index(_need_str(corpus, "corpus"))
    scores = [float(s) for s in model.get_scores(tokenize(q))]
    order = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
    return [rows[i]["text"] for i in order[:k]]
