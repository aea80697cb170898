"""Symbolic sub-task handlers for the sub-questions DecomP's own prompts write
(letter_cat and reverse).  Each reads the one question it is given and fails with a
message that says what it could not read."""

from __future__ import annotations

import json
import re

_QUOTED = re.compile(r'"([^"]*)"')
_POSITION = re.compile(r"(?:the letter at position (\d+)|the (last) letter) in \"([^\"]*)\"")
_EXTRACT = re.compile(r'.* (?:is|reverse) "(.*)"\.')
_NUMBERED = re.compile(r"^\s*\d+\.\s*")


def _quoted(question: str) -> str:
    m = _QUOTED.search(question)
    if m is None:
        raise ValueError(f"no quoted text in {question!r}")
    return m.group(1)


def split_words(question: str) -> list[str]:
    """`What are the words in "Alan Mathison Turing"?` -> ["Alan", "Mathison", "Turing"]."""
    return _quoted(question).split()


def str_position(question: str) -> str:
    """`What is the letter at position 2 in "Alan"?` -> "l"; `What is the last letter in
    "Alan"?` -> "n"."""
    m = _POSITION.search(question)
    if m is None:
        raise ValueError(f"no letter position in {question!r}")
    word = m.group(3)
    if m.group(2):
        return word[-1]
    k = int(m.group(1))
    if not 1 <= k <= len(word):
        raise ValueError(f"position {k} is outside {word!r}")
    return word[k - 1]


def merge(question: str) -> str:
    """`Concatenate ["a", "b"] using a space.` -> "a b"."""
    m = re.search(r"Concatenate (\[.*\]) using a (space|semicolon|comma)", question)
    if m is None:
        raise ValueError(f"cannot read a list and a delimiter in {question!r}")
    sep = {"space": " ", "semicolon": ";", "comma": ","}[m.group(2)]
    return sep.join(str(x) for x in json.loads(m.group(1)))


def extract(question: str) -> str:
    """The quoted text after the last `is` / `reverse` of a sentence, as the reverse
    task's extractor reads it."""
    m = _EXTRACT.match(question)
    if m is None:
        raise ValueError(f"nothing to extract from {question!r}")
    return m.group(1)


def remove_numbers(question: str) -> str:
    """`Remove the numbers from "1. a, 2. b".` -> "a, b"."""
    return ", ".join(_NUMBERED.sub("", item) for item in _quoted(question).split(", "))


def reverse_items(question: str) -> str:
    """`Reverse the sequence "a, b, c".` -> "c, b, a"."""
    return ", ".join(reversed(_quoted(question).split(", ")))


def join(question: str) -> str:
    """`"c, d" "a, b"` -> "c, d, a, b"."""
    parts = _QUOTED.findall(question)
    if not parts:
        raise ValueError(f"no quoted sequences in {question!r}")
    return ", ".join(parts)
