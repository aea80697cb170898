"""Python side of the ``std.hooks`` standard library module (``stdlib/hooks.pflow``).

Programs and triggers for language hooks. They run *while a model writes*, on
whatever text it wrote, so they are lenient where a hook needs it: the calculator
returns ``""`` (insert nothing) for text that is not arithmetic instead of failing
the generation.  Every function is called with keyword arguments by the pflow runtime.

* Calculator — :func:`calculate` (safe: parsed with :mod:`ast`, never ``eval``;
  bounded powers and lengths), :func:`is_wrong` and :func:`fix_result`.
* Retrieval — :func:`needs_fact` and :func:`fact_for` over a local corpus: a JSONL
  file of ``{"entity": ..., "fact": ..., "aliases": [...]}`` rows, or a text file of
  ``Entity: fact`` lines (``#`` comments and blank lines ignored).  ``corpus`` is the
  file's path (relative to the working directory); an empty ``corpus`` means the file
  named by the environment variable ``PFLOW_FACTS``.
* Guardrail — :func:`is_refusal` and :func:`best_effort`.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import re
import threading
from pathlib import Path

__all__ = [
    "calculate",
    "evaluate",
    "is_wrong",
    "fix_result",
    "load_corpus",
    "needs_fact",
    "fact_for",
    "is_refusal",
    "best_effort",
]

# ---------------------------------------------------------------- calculator

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_LENGTH = 200
_MAX_EXPONENT = 100
_MAX_BASE = 10**12
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TIMES = re.compile(r"(?<=[\d)\s])[x×X](?=[\s\d(])")


def _normalise(expr: str) -> str:
    text = expr.strip().rstrip("=").strip()
    text = _THOUSANDS.sub("", text)
    text = _TIMES.sub("*", text)
    return text.replace("÷", "/").replace("−", "-").replace("^", "**")


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > _MAX_EXPONENT or abs(left) > _MAX_BASE):
            raise ValueError("power too large")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, complex):
            raise ValueError("not a real number")
        return value
    raise ValueError("not plain arithmetic (numbers, + - * / // % ** and parentheses)")


def evaluate(expr: str) -> int | float:
    """The value of an arithmetic expression as a model writes it.

    Accepts ``1,200`` (thousands separators), ``x`` / ``×`` / ``÷`` / ``^`` / ``−`` and a
    trailing ``=``. Raises ``ValueError`` for anything else, for division by zero, for
    results that are too large, and for expressions over 200 characters.
    """
    if not isinstance(expr, str):
        raise ValueError(f"expr must be a string, got {type(expr).__name__}")
    text = _normalise(expr)
    if not text:
        raise ValueError("empty expression")
    if len(text) > _MAX_LENGTH:
        raise ValueError(f"expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"not plain arithmetic: {expr!r}") from None
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ValueError(f"division by zero in {expr!r}") from None
    except OverflowError:
        raise ValueError(f"the result of {expr!r} is too large") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the result of {expr!r} is not a finite number")
    return value


def _format(value: int | float) -> str:
    """Integers as they are; other values with at most 4 decimals (no trailing zeros),
    very large or very small ones with 4 significant digits."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if abs(value) >= 1e15 or abs(value) < 1e-4:
            return f"{value:.4g}"
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return text if text not in ("-0", "") else "0"
    return str(value)


def calculate(expr: str) -> str:
    """The value of ``expr`` with a leading space, ready to insert after ``=``:
    ``"7 * 12 "`` -> ``" 84"``, ``"10 / 4"`` -> ``" 2.5"``, ``"1,200 x 3"`` -> ``" 3600"``.

    Text that is not arithmetic (or divides by zero) gives ``""``: a hook then inserts
    nothing and the model goes on with its own words.
    """
    try:
        return " " + _format(evaluate(expr))
    except ValueError:
        return ""


def _number(text: str) -> float | None:
    try:
        return float(_THOUSANDS.sub("", text.strip()).rstrip("."))
    except ValueError:
        return None


def is_wrong(expr: str, value: str) -> bool:
    """Whether ``value`` is not the value of ``expr`` (to 4 decimals). ``False`` when
    either is not a number or arithmetic: only a sure mistake counts."""
    written = _number(value)
    if written is None:
        return False
    try:
        exact = float(evaluate(expr))
    except ValueError:
        return False
    return abs(exact - written) > 1e-4 * max(1.0, abs(exact)) and _format(exact) != value.strip()


def fix_result(segment: str, expr: str, value: str) -> str:
    """``segment`` with its last written ``value`` (after ``expr =``) replaced by the
    exact value of ``expr``: ``"so 7 * 12 = 86"`` -> ``"so 7 * 12 = 84"``. The segment is
    returned unchanged when the expression cannot be evaluated."""
    try:
        exact = _format(evaluate(expr))
    except ValueError:
        return segment
    i = segment.rfind(value)
    if i < 0:
        return segment
    return segment[:i] + exact + segment[i + len(value):]


# ---------------------------------------------------------------- retrieval

CORPUS_ENV = "PFLOW_FACTS"
_CORPORA: dict[tuple[str, float, int], list[tuple[str, list[re.Pattern[str]], str]]] = {}
_CORPUS_LOCK = threading.Lock()


def _corpus_path(corpus: str) -> Path:
    name = corpus.strip() if isinstance(corpus, str) else ""
    if not name:
        name = os.environ.get(CORPUS_ENV, "").strip()
        if not name:
            raise ValueError(f"no corpus: pass corpus=\"path/to/facts.jsonl\", or set the "
                             f"environment variable {CORPUS_ENV} to the corpus file")
    path = Path(name).expanduser()
    if not path.is_file():
        raise ValueError(f"corpus file {name!r} not found (a relative path is relative to the "
                         f"working directory, {Path.cwd()})")
    return path


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(name.strip()) + r"(?!\w)", re.IGNORECASE)


def load_corpus(corpus: str) -> list[tuple[str, list[re.Pattern[str]], str]]:
    """The corpus as ``(entity, name patterns, fact)`` rows; cached per file version.

    Raises ``ValueError`` for a missing file or a malformed row (naming its line).
    """
    path = _corpus_path(corpus)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    with _CORPUS_LOCK:
        cached = _CORPORA.get(key)
    if cached is not None:
        return cached
    rows: list[tuple[str, list[re.Pattern[str]], str]] = []
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if jsonl:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{n}: not JSON: {exc.msg}") from None
            if not (isinstance(row, dict) and isinstance(row.get("entity"), str)
                    and isinstance(row.get("fact"), str)):
                raise ValueError(f"{path.name}:{n}: a row needs \"entity\" and \"fact\" strings")
            entity, fact = row["entity"], row["fact"]
            aliases = [a for a in row.get("aliases") or [] if isinstance(a, str) and a.strip()]
        else:
            entity, sep, fact = line.partition(":")
            if not sep or not entity.strip() or not fact.strip():
                raise ValueError(f"{path.name}:{n}: expected 'Entity: fact'")
            aliases = []
        names = [entity, *aliases]
        rows.append((entity.strip(), [_name_pattern(x) for x in names], fact.strip()))
    with _CORPUS_LOCK:
        _CORPORA[key] = rows
    return rows


def _unknown(segment: str, text: str, corpus: str) -> list[tuple[str, str]]:
    """(entity, fact) of the corpus entities ``segment`` names whose fact ``text`` lacks."""
    out = []
    for entity, patterns, fact in load_corpus(corpus):
        if fact in text:
            continue
        if any(p.search(segment) for p in patterns):
            out.append((entity, fact))
    return out


def needs_fact(segment: str, text: str, corpus: str = "") -> bool:
    """Whether ``segment`` names an entity of the corpus whose fact is not yet in
    ``text`` (names match case-insensitively, as whole words)."""
    return bool(_unknown(segment, text, corpus))


def fact_for(segment: str, text: str, corpus: str = "", limit: int = 1) -> str:
    """The facts (at most ``limit``) about the unknown entities ``segment`` names, as
    sentences with a leading space, ready to insert after the sentence; ``""`` when
    there are none."""
    facts = [fact for _, fact in _unknown(segment, text, corpus)[:max(1, int(limit))]]
    return "".join(" " + f if f.endswith((".", "!", "?")) else " " + f + "." for f in facts)


# ---------------------------------------------------------------- guardrail

REFUSAL = re.compile(
    r"\bI(?:['’]m| am) (?:sorry|afraid|unable|not able)\b"
    r"|\bI (?:cannot|can['’]t|can not|won['’]t|will not) (?:help|answer|assist|provide|do|comply|share)\b"
    r"|\bAs an AI\b",
    re.IGNORECASE)
BEST_EFFORT = "I cannot be fully certain, but here is my best-effort answer:"


def is_refusal(sentence: str) -> bool:
    """Whether ``sentence`` refuses or apologises instead of answering
    ("I'm sorry, but I can't help with that.", "As an AI, I cannot ...")."""
    return REFUSAL.search(sentence) is not None


def best_effort(segment: str, lead: str = BEST_EFFORT) -> str:
    """What a refusal is replaced with: a request, in the model's own voice, to give
    its best-effort answer (``lead``), which the model then continues."""
    return lead
