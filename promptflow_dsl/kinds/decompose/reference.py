"""The pure parts of ``protocol decomp``: the decomposition protocol as the published
DecomP code runs it (Khot et al., ICLR 2023), for programs that must reproduce its
observable behaviour.  No I/O, no asyncio.

Differences from the default protocol (see docs/techniques/decompose.md):

* the prompt is the few-shot text exactly as written, ``"\\n\\n"``, ``QC: question``,
  then ``\\nQS: line\\nA: answer`` per step and ``\\nQS:``; the whole text has trailing
  white space removed; answers are ``json.dumps(answer)`` (non-ASCII escaped);
* a line is read by three patterns, in this order: ``[model] question`` (the op is
  ``select``), ``(op) [model] question``, ``(op) arguments``;
* ``#k`` is one digit (``#12`` is ``#1`` followed by ``2``) and replaced by plain text
  substitution of ``#k`` everywhere in the question;
* the ops and sub-ops (below) behave as the reference's executor: an op name is
  ``first_sub1_sub2...`` split at ``_``.

Every failure raises :class:`RefError`; the caller drops the decomposition (a search
then tries the next best one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .details import REF_SUB_OPS as _SUB_OPS
from .details import known_op

__all__ = ["known_op"]  # the checker's rule, the same for the run

EOQ = "[EOQ]"

_MODEL_Q = re.compile(r"\[([^\]]+)\] (.*)")
_OP_MODEL_Q = re.compile(r"\((.+)\) \[([^\]]+)\] (.*)")
_OP_ONLY = re.compile(r"\((.+)\)(.*)")
_INDEX = re.compile(r"#(\d)")


class RefError(ValueError):
    """A step the reference protocol cannot run; the message says why."""


@dataclass(frozen=True)
class RefLine:
    """One decomposer line read the reference's way."""

    text: str
    op: str  # as written, e.g. "select", "project_values_flat_unique", "filter(#2)"
    handler: str
    question: str


def dumps(value: Any) -> str:
    """An answer as the reference writes it: ``json.dumps`` with its defaults."""
    return json.dumps(value)


def normalize(value: Any) -> Any:
    """A handler's answer after the reference's JSON round trip (tuples become lists).
    Raises :class:`RefError` for a value that is not JSON."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise RefError(f"the answer {value!r} is not JSON: {exc}") from None


def build_prompt(fewshot: str, question: str, history: list[tuple[str, str]]) -> str:
    """The text the decomposer continues.  ``history`` holds (line, answer as JSON text)."""
    seq = "QC: " + question
    for line, answer in history:
        seq += "\nQS: " + line + "\nA: " + answer
    seq += "\nQS: "
    if fewshot:
        seq = fewshot + "\n\n" + seq
    return seq.rstrip()


def indices(text: str) -> list[int]:
    """The one-digit answer numbers written as ``#k`` in ``text``, in order."""
    return [int(m.group(1)) for m in _INDEX.finditer(text)]


def parse(line: str) -> RefLine:
    """Read a stripped decomposer line (not ``[EOQ]``).  Raises :class:`RefError` for a line
    that names no handler (the reference's op-only lines are its own bookkeeping)."""
    m = _MODEL_Q.match(line)
    if m:
        return RefLine(line, "select", m.group(1), m.group(2))
    m = _OP_MODEL_Q.match(line)
    if m:
        return RefLine(line, m.group(1), m.group(2), m.group(3))
    raise RefError(f"the line {line!r} names no handler: expected `[handler] question` or "
                   f"`(op) [handler] question`")


def kind_of(op: str) -> str:
    """``select``, ``project`` or ``filter`` by how the op starts.  Raises :class:`RefError`."""
    for kind in ("select", "project", "filter"):
        if op.startswith(kind):
            return kind
    raise RefError(f"op ({op}) is not implemented (ops start with select, project or filter)")


def assignments(answers: list[str], context: list[str] | None) -> dict[str, Any]:
    """``#k`` -> the k-th answer (decoded), and ``#C`` -> ``PARA_0``... for a context."""
    out: dict[str, Any] = {f"#{i + 1}": json.loads(a) for i, a in enumerate(answers)}
    if context:
        out["#C"] = [f"PARA_{i}" for i in range(len(context))]
    return out


def _need(idx: str, assigned: dict[str, Any], what: str) -> Any:
    if idx not in assigned:
        raise RefError(f"{what}: {idx} names no answer yet")
    return assigned[idx]


def select_question(question: str, assigned: dict[str, Any]) -> str:
    """The sub-question of a ``select`` step.  Raises :class:`RefError`."""
    for k in indices(question):
        idx = f"#{k}"
        question = question.replace(idx, dumps(_need(idx, assigned, "select")))
    return question


def _item(item: Any) -> Any:
    return tuple(item) if isinstance(item, list) and len(item) == 2 else item


def _put(question: str, idx: str, item: Any, first: str, op: str) -> str:
    """``idx`` in ``question`` replaced by one item as the op reads it."""
    item = _item(item)
    if first.startswith(("projectValues", "filterValues")) or first.startswith(
            ("projectKeys", "filterKeys")):
        if not isinstance(item, tuple):
            raise RefError(f"({op}) needs [key, value] pairs, not {dumps(item)}")
        keys = first.startswith(("projectKeys", "filterKeys"))
        return question.replace(idx, dumps(item[0] if keys else item[1]))
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        item = str(item)
    if not isinstance(item, str):
        raise RefError(f"({op}) needs string items, not {dumps(item)}")
    return question.replace(idx, item)


def project_questions(op: str, question: str, assigned: dict[str, Any]) -> tuple[list[Any],
                                                                                  list[str]]:
    """(the items, one sub-question per item) of a ``project...`` step.  A string answer
    counts as a list of one item.  Raises :class:`RefError`."""
    ks: list[Any] = list(indices(question))
    if "#C" in question and not ks:
        ks = ["C"]
    if len(ks) > 1:
        raise RefError(f"({op}) can go over one #k only, the question has {len(ks)}")
    if not ks:
        raise RefError(f"({op}) found no #k to go over in {question!r}")
    idx = f"#{ks[0]}"
    items = _need(idx, assigned, f"({op})")
    if not isinstance(items, list):
        if not isinstance(items, str):
            raise RefError(f"({op}) needs a list, {idx} is {dumps(items)}")
        items = [items]
    first = op.split("_")[0]
    return items, [_put(question, idx, item, first, op) for item in items]


def filter_questions(op: str, question: str, assigned: dict[str, Any]) -> tuple[list[Any],
                                                                                list[str]]:
    """(the items, one sub-question per item) of a ``filter...`` step.  With several
    ``#k`` in the question, the op names the list: ``(filter(#2))``.  Raises
    :class:`RefError`."""
    ks = indices(question)
    if len(ks) > 1:
        named = indices(op)
        if len(named) != 1:
            raise RefError(f"({op}): the question has several #k, so the op must name one, "
                           f"as (filter(#2))")
        k = named[0]
        for j in ks:
            if j != k:
                idx = f"#{j}"
                question = question.replace(idx, dumps(_need(idx, assigned, f"({op})")))
    elif ks:
        k = ks[0]
    else:
        raise RefError(f"({op}) found no #k in {question!r}")
    idx = f"#{k}"
    items = _need(idx, assigned, f"({op})")
    if not isinstance(items, list):
        raise RefError(f"({op}) needs a list, {idx} is {dumps(items)}")
    first = op.split("_")[0]
    return items, [_put(question, idx, item, first, op) for item in items]


def is_true(answer: Any) -> bool:
    """A ``filter`` answer: a bool as it is; a string is true only when it is exactly
    ``yes``, ``true`` or ``1`` in any case.  Raises :class:`RefError` for anything else."""
    if isinstance(answer, bool):
        return answer
    if isinstance(answer, str):
        return answer.lower() in ("yes", "1", "true")
    raise RefError(f"cannot read {dumps(answer)} as true or false")


def flatten(value: Any) -> list[Any]:
    """Every non-list leaf of ``value``, in order (recursively; a string is iterated)."""
    out: list[Any] = []
    for item in value:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(item)
    return out


def combine(op: str, items: list[Any], results: list[Any]) -> Any:
    """The step's answer from its items and its handler answers, sub-ops applied.
    Raises :class:`RefError`."""
    first = op.split("_")[0].split("(")[0]
    answers: Any
    if first == "projectValues":
        answers = [[_item(x)[0], r] for x, r in zip(items, results, strict=True)]
    elif first == "projectKeys":
        answers = [[r, _item(x)[1]] for x, r in zip(items, results, strict=True)]
    elif first == "project":
        answers = [[x, r] for x, r in zip(items, results, strict=True)]
    elif first == "select":
        answers = results[0]
    elif first == "filter":
        answers = [x for x, r in zip(items, results, strict=True) if is_true(r)]
    else:
        raise RefError(f"op ({first}) is not implemented")
    return sub_ops(op, answers)


def sub_ops(op: str, answers: Any) -> Any:
    """The sub-ops after the op's first part (``_flat``, ``_unique``, ``_keys``,
    ``_values``), left to right.  Raises :class:`RefError`."""
    for sub in op.split("_")[1:]:
        try:
            if sub == "flat":
                answers = flatten(answers)
            elif sub == "unique":
                if not isinstance(answers, list):
                    raise RefError(f"_unique needs a list, not {dumps(answers)}")
                seen: set[str] = set()
                kept = []
                for item in answers:
                    if (key := dumps(item)) not in seen:
                        seen.add(key)
                        kept.append(item)
                answers = kept
            elif sub in ("keys", "values"):
                answers = [x[0 if sub == "keys" else 1] for x in answers]
            else:
                raise RefError(f"unknown sub-op _{sub} (sub-ops: {', '.join(_SUB_OPS)})")
        except (TypeError, IndexError, KeyError) as exc:
            raise RefError(f"_{sub} cannot be applied to {dumps(answers)}: {exc}") from None
    return normalize(answers)


def final_answer(answer_json: str) -> Any:
    """What the reference returns for the last answer: the decoded JSON."""
    return json.loads(answer_json)
