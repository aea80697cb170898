"""The pure parts of a ``decompose`` run: reading the decomposer's lines, building its
prompt, ``#k`` substitution and the list operations.  No I/O, no asyncio.

A line the decomposer writes is ``[handler] sub-question``, ``(op) [handler]
sub-question`` or ``[EOQ]`` (an echoed ``QS:`` in front is tolerated).  Answers
enter the prompt and ``select`` sub-questions JSON-encoded with
``json.dumps(answer, ensure_ascii=False)`` (default separators), as in the
published protocol.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: op as written -> canonical op (the paper's names are aliases)
OPS: dict[str, str] = {
    "select": "select",
    "foreach": "foreach",
    "project_values": "foreach",
    "foreach_merge": "foreach_merge",
    "project_values_flat_unique": "foreach_merge",
    "filter": "filter",
}

_LINE = re.compile(r"^(?:\((?P<op>[^()]*)\)\s*)?\[(?P<h>[^\[\]]*)\]\s*(?P<q>.*)$", re.S)
_ECHO = re.compile(r"^\s*QS\s*:\s*", re.I)
_REF = re.compile(r"#(\d+)")
_FALSE_WORDS = frozenset({"no", "false", "none", "n", "0", "null"})
_TRUE_WORDS = frozenset({"yes", "true", "y", "1"})


class LineError(ValueError):
    """A line the decomposer wrote cannot be read; the message says why."""


@dataclass(frozen=True)
class StepLine:
    """One parsed decomposer line.  ``eoq`` lines have no handler."""

    text: str  # the line as written (stripped, without an echoed ``QS:``)
    eoq: bool = False
    op: str = "select"  # canonical op
    op_written: str | None = None  # the op as written, for messages and the trace
    handler: str = ""
    question: str = ""

    def show(self) -> str:
        op = f"({self.op_written}) " if self.op_written else ""
        return f"{op}[{self.handler}]"


def encode(answer: Any) -> str:
    """An answer as it appears in the prompt and in ``select`` sub-questions."""
    return json.dumps(answer, ensure_ascii=False)


def first_line(reply: str) -> str:
    """The line the model wrote: up to the first newline, stripped, without ``QS:``."""
    line = reply.lstrip().split("\n", 1)[0].strip()
    return _ECHO.sub("", line, count=1).strip()


def parse_line(line: str) -> StepLine:
    """Read one decomposer line.  Raises :class:`LineError`."""
    if not line:
        raise LineError("the decomposer wrote an empty line (expected `[handler] sub-question` "
                        "or `[EOQ]`)")
    m = _LINE.match(line)
    if m is None:
        raise LineError(f"malformed line {line!r}: expected `[handler] sub-question`, "
                        f"`(op) [handler] sub-question` or `[EOQ]`")
    name = m.group("h").strip()
    if name.upper() == "EOQ" and m.group("op") is None:
        return StepLine(line, eoq=True)
    if not name:
        raise LineError(f"malformed line {line!r}: the handler name is empty")
    written = m.group("op")
    op = "select"
    if written is not None:
        written = written.strip()
        op = OPS.get(written.lower(), "")
        if not op:
            raise LineError(f"unknown op ({written}) in {line!r}; ops: "
                            f"{', '.join(OPS)}")
    return StepLine(line, op=op, op_written=written, handler=name,
                    question=m.group("q").strip())


def build_prefix(fewshot: str, question: str, history: list[tuple[str, Any]]) -> str:
    """The text the decomposer continues: few-shot text, ``QC:``, the ``QS:``/``A:``
    pairs so far, then ``QS:``."""
    parts = [fewshot.rstrip(), ""] if fewshot.strip() else []
    parts.append(f"QC: {question}")
    for line, answer in history:
        parts.append(f"QS: {line}")
        parts.append(f"A: {encode(answer)}")
    parts.append("QS:")
    return "\n".join(parts)


def refs(question: str) -> list[int]:
    """The answer numbers a sub-question refers to (``#12`` -> 12), in order written."""
    return [int(m.group(1)) for m in _REF.finditer(question)]


def _answer(k: int, answers: list[Any]) -> Any:
    if not 1 <= k <= len(answers):
        have = f"#1 to #{len(answers)}" if answers else "none yet"
        raise LineError(f"#{k} names no answer (answers so far: {have})")
    return answers[k - 1]


def substitute(question: str, answers: list[Any]) -> str:
    """A ``select`` sub-question: every ``#k`` becomes the k-th answer, JSON-encoded.
    Raises :class:`LineError` for a ``#k`` out of range."""
    return _REF.sub(lambda m: encode(_answer(int(m.group(1)), answers)), question)


def list_ref(question: str, answers: list[Any], op: str) -> int:
    """The ``#k`` a ``foreach``/``filter`` step iterates over: the first one whose answer
    is a list.  Raises :class:`LineError` when there is none."""
    ks = refs(question)
    if not ks:
        raise LineError(f"a ({op}) step needs a #k naming the list to go over")
    for k in ks:
        if isinstance(_answer(k, answers), list):
            return k
    shown = ", ".join(f"#{k} is {type(answers[k - 1]).__name__}" for k in dict.fromkeys(ks))
    raise LineError(f"a ({op}) step needs a list, but {shown}")


def item_text(item: Any) -> str:
    """How a list item replaces its ``#k``: a string as it is, anything else as JSON."""
    return item if isinstance(item, str) else encode(item)


def substitute_item(question: str, k: int, item: Any, answers: list[Any]) -> str:
    """A ``foreach``/``filter`` sub-question for one item of the list ``#k`` names."""
    def one(m: re.Match[str]) -> str:
        j = int(m.group(1))
        return item_text(item) if j == k else encode(_answer(j, answers))

    return _REF.sub(one, question)


def _key(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def flat_unique(answers: list[Any]) -> list[Any]:
    """``foreach_merge``: the answers flattened one level in item order (an answer that is
    not a list counts as one item), the first of duplicates kept."""
    out: list[Any] = []
    seen: set[str] = set()
    for answer in answers:
        for v in answer if isinstance(answer, list) else [answer]:
            key = _key(v)
            if key not in seen:
                seen.add(key)
                out.append(v)
    return out


def truthy(answer: Any) -> bool:
    """Whether a ``filter`` answer keeps its item.  Strings are read as words: ``yes``,
    ``true`` keep; ``no``, ``false``, ``none``, ``0`` and the empty string drop (any
    case, trailing punctuation ignored); other strings keep.  Other values by Python
    truthiness."""
    if isinstance(answer, str):
        words = answer.strip().lower().split()
        word = words[0].strip(".,!;:\"'") if words else ""
        if word in _TRUE_WORDS:
            return True
        return word not in _FALSE_WORDS and bool(word)
    return bool(answer)


def clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
