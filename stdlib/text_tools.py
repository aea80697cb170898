"""Python side of the ``std.text`` standard library module (``stdlib/text.pflow``).

Every function here is pure (no I/O, no state), called with keyword arguments by
the pflow runtime, and raises :class:`ValueError` with a message meant for the
person who wrote the ``.pflow`` program when its input cannot be handled.

The ``*_q`` functions are *sub-question handlers* for ``decompose``: they take the
sub-question a decomposer wrote (``What is letter 2 of "Alan"?``) and answer it
symbolically, as in the Decomposed Prompting paper's letter-concatenation task.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "split_words",
    "split_words_q",
    "join",
    "kth_letter",
    "letter_at_q",
    "merge_q",
    "reverse",
    "lines",
    "extract",
    "words_count",
]

# Named delimiters understood by merge_q ("... using a comma.").
DELIMITERS: dict[str, str] = {
    "a space": " ",
    "space": " ",
    "spaces": " ",
    "a comma": ",",
    "comma": ",",
    "commas": ",",
    "a semicolon": ";",
    "semicolon": ";",
    "semicolons": ";",
    "a newline": "\n",
    "newline": "\n",
    "newlines": "\n",
    "a new line": "\n",
    "nothing": "",
    "no separator": "",
    "an empty string": "",
}

_QUOTED = re.compile(r'"([^"]*)"')
_LETTER_Q = re.compile(
    r'\b(?:letter|character|position)\s+(?:#\s*)?(\d+|last)(?:st|nd|rd|th)?\s+of\s+"([^"]*)"',
    re.IGNORECASE,
)
_USING = re.compile(r"^\s*(?:using|with|separated by|joined by)\s+(.*?)\s*[.?!]?\s*$",
                    re.IGNORECASE | re.DOTALL)


def _need_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}: {value!r}")
    return value


def _need_str_list(value: object, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} must be a list of strings, got {type(value).__name__}: {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{what}[{i}] must be a string, got {type(item).__name__}: {item!r}")
    return list(value)


def split_words(text: str) -> list[str]:
    """Split ``text`` on runs of whitespace: ``"Alan  Turing\\n"`` -> ``["Alan", "Turing"]``.

    Leading and trailing whitespace is ignored; an empty or blank text gives ``[]``.
    """
    return _need_str(text, "text").split()


def split_words_q(question: str) -> list[str]:
    """The words inside the first double-quoted span of ``question``.

    ``'What are the words in "Alan Mathison Turing"?'`` -> ``["Alan", "Mathison", "Turing"]``.
    Without a quoted span, the words of the whole question.
    """
    q = _need_str(question, "question")
    m = _QUOTED.search(q)
    return (m.group(1) if m else q).split()


def join(items: list[str], sep: str = " ") -> str:
    """Join ``items`` with ``sep`` between them: ``join(["a", "b"], "-")`` -> ``"a-b"``."""
    parts = _need_str_list(items, "items")
    return _need_str(sep, "sep").join(parts)


def kth_letter(word: str, k: int) -> str:
    """The ``k``-th character of ``word``, counting from 1: ``kth_letter("Turing", 2)`` -> ``"u"``.

    Raises ``ValueError`` when ``k`` is not a positive integer or the word is shorter than ``k``.
    """
    w = _need_str(word, "word")
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k must be an integer, got {type(k).__name__}: {k!r}")
    if k < 1:
        raise ValueError(f"k must be 1 or more (positions count from 1), got {k}")
    if k > len(w):
        raise ValueError(f"letter {k} is out of range: {w!r} has {len(w)} letter(s)")
    return w[k - 1]


def letter_at_q(question: str) -> str:
    """Answer ``'What is letter N of "word"?'``; ``N`` counts from 1 or is ``last``.

    Also accepted: ``letter 2nd``, ``character 3``, ``position 1`` and any letter case.
    ``'What is letter last of "Lovelace"?'`` -> ``"e"``.
    """
    q = _need_str(question, "question")
    m = _LETTER_Q.search(q)
    if m is None:
        raise ValueError(
            f'cannot read a position and a word from {q!r}; expected e.g. \'What is letter 2 of "word"?\'')
    pos, word = m.group(1), m.group(2)
    if not word:
        raise ValueError(f"the word is empty in {q!r}")
    if pos.lower() == "last":
        return word[-1]
    return kth_letter(word=word, k=int(pos))


def _find_json_list(text: str) -> tuple[list[object], int]:
    """The first JSON list in ``text`` and the offset just past it."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\[", text):
        try:
            value, end = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, list):
            return value, end
    raise ValueError(f'no JSON list found in {text!r}; expected e.g. \'Concatenate ["a", "b"] using a space.\'')


def _delimiter(spec: str) -> str:
    s = spec.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        try:
            value = json.loads(s)
        except json.JSONDecodeError:
            raise ValueError(f"bad quoted delimiter {s}") from None
        return str(value)
    key = " ".join(s.lower().split())
    if key in DELIMITERS:
        return DELIMITERS[key]
    known = ", ".join(sorted({k for k in DELIMITERS if k.startswith(("a ", "an ", "no"))}))
    raise ValueError(f"unknown delimiter {spec.strip()!r}; use one of: {known}, or a quoted string")


def merge_q(question: str) -> str:
    """Answer ``'Concatenate ["a", "b"] using a space.'`` -> ``"a b"``.

    The list is JSON (as a decomposer's ``#k`` answers are written). Delimiters by name:
    ``a space``, ``a comma``, ``a semicolon``, ``a newline``, ``nothing``; or a quoted
    string such as ``using "-"``. Without a ``using`` part the items are joined with nothing.
    Numbers in the list are written as text; other non-string items are an error.
    """
    q = _need_str(question, "question")
    items, end = _find_json_list(q)
    parts: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            parts.append(json.dumps(item))
        else:
            raise ValueError(f"item {i + 1} of the list is not text: {item!r}")
    rest = q[end:]
    if not rest.strip(" \t.?!"):
        return "".join(parts)
    m = _USING.match(rest)
    if m is None:
        raise ValueError(f"cannot read the delimiter from {rest.strip()!r}; expected 'using a space' or similar")
    return _delimiter(m.group(1)).join(parts)


def reverse(items: list[str]) -> list[str]:
    """The items in reverse order: ``["a", "b", "c"]`` -> ``["c", "b", "a"]``."""
    return list(reversed(_need_str_list(items, "items")))


def lines(text: str) -> list[str]:
    """The non-empty lines of ``text``, each stripped of surrounding whitespace."""
    return [line.strip() for line in _need_str(text, "text").splitlines() if line.strip()]


def extract(text: str, pattern: str) -> str:
    """The first match of the regular expression ``pattern`` in ``text``.

    Returns the first capture group when the pattern has one (``""`` when that group
    took no part in the match), else the whole match. Raises ``ValueError`` for an
    invalid pattern or when nothing matches.
    """
    t = _need_str(text, "text")
    p = _need_str(pattern, "pattern")
    try:
        rx = re.compile(p)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {p!r}: {exc}") from None
    m = rx.search(t)
    if m is None:
        shown = t if len(t) <= 60 else t[:57] + "..."
        raise ValueError(f"pattern {p!r} does not match {shown!r}")
    if rx.groups:
        group = m.group(1)
        return group if group is not None else ""
    return m.group(0)


def words_count(text: str) -> int:
    """The number of whitespace-separated words in ``text``."""
    return len(_need_str(text, "text").split())
