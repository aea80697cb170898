"""Unit tests for stdlib/text_tools.py, the Python side of ``std.text``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "stdlib" / "text_tools.py"


def _load():
    # stdlib/ is not a package: load the module by path, as the runtime does.
    spec = importlib.util.spec_from_file_location("pflow_stdlib_text_tools_under_test", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tt = _load()


# ------------------------------------------------------------------ split_words / words_count

@pytest.mark.parametrize(("text", "words"), [
    ("Alan Turing", ["Alan", "Turing"]),
    ("  Alan \t Mathison\nTuring  ", ["Alan", "Mathison", "Turing"]),
    ("", []),
    ("   \n ", []),
    ("één twee", ["één", "twee"]),
])
def test_split_words(text, words):
    assert tt.split_words(text) == words
    assert tt.words_count(text) == len(words)


def test_split_words_rejects_non_text():
    with pytest.raises(ValueError, match="text must be a string"):
        tt.split_words(3)
    with pytest.raises(ValueError, match="text must be a string"):
        tt.words_count(None)


# ------------------------------------------------------------------ split_words_q

def test_split_words_q_uses_first_quoted_span():
    q = 'What are the words in "Alan Mathison Turing"? Not "these".'
    assert tt.split_words_q(q) == ["Alan", "Mathison", "Turing"]


def test_split_words_q_without_quotes_splits_whole_question():
    assert tt.split_words_q("Grace Brewster Hopper") == ["Grace", "Brewster", "Hopper"]


def test_split_words_q_empty_quotes():
    assert tt.split_words_q('What are the words in ""?') == []


# ------------------------------------------------------------------ join / reverse

def test_join_default_and_custom_separator():
    assert tt.join(["a", "b", "c"]) == "a b c"
    assert tt.join(["a", "b"], sep="") == "ab"
    assert tt.join(items=["x"], sep=", ") == "x"
    assert tt.join([]) == ""


def test_join_rejects_non_string_items():
    with pytest.raises(ValueError, match=r"items\[1\] must be a string"):
        tt.join(["a", 2])
    with pytest.raises(ValueError, match="items must be a list"):
        tt.join("abc")


def test_reverse():
    items = ["a", "b", "c"]
    assert tt.reverse(items) == ["c", "b", "a"]
    assert items == ["a", "b", "c"]  # pure: input untouched
    assert tt.reverse([]) == []


# ------------------------------------------------------------------ kth_letter

@pytest.mark.parametrize(("word", "k", "letter"), [
    ("Turing", 1, "T"), ("Turing", 2, "u"), ("Turing", 6, "g"), ("é", 1, "é"),
])
def test_kth_letter(word, k, letter):
    assert tt.kth_letter(word=word, k=k) == letter


@pytest.mark.parametrize(("word", "k", "message"), [
    ("Ada", 4, "out of range"),
    ("", 1, "out of range"),
    ("Ada", 0, "1 or more"),
    ("Ada", -1, "1 or more"),
    ("Ada", True, "must be an integer"),
    ("Ada", "2", "must be an integer"),
])
def test_kth_letter_errors(word, k, message):
    with pytest.raises(ValueError, match=message):
        tt.kth_letter(word=word, k=k)


# ------------------------------------------------------------------ letter_at_q

@pytest.mark.parametrize(("question", "letter"), [
    ('What is letter 1 of "Grace"?', "G"),
    ('What is letter 2 of "Alan"?', "l"),
    ('What is letter last of "Lovelace"?', "e"),
    ('what is LETTER Last of "Ada"?', "a"),
    ('What is letter 3rd of "Hopper"?', "p"),
    ('What is character 4 of "Byron"?', "o"),
    ('What is letter 10 of "Mathematician"?', "c"),
])
def test_letter_at_q(question, letter):
    assert tt.letter_at_q(question) == letter


def test_letter_at_q_errors():
    with pytest.raises(ValueError, match="cannot read a position"):
        tt.letter_at_q("What is the first letter of Ada?")
    with pytest.raises(ValueError, match="out of range"):
        tt.letter_at_q('What is letter 9 of "Ada"?')
    with pytest.raises(ValueError, match="1 or more"):
        tt.letter_at_q('What is letter 0 of "Ada"?')
    with pytest.raises(ValueError, match="empty"):
        tt.letter_at_q('What is letter last of ""?')


# ------------------------------------------------------------------ merge_q

@pytest.mark.parametrize(("question", "merged"), [
    ('Concatenate ["l", "a", "u"] using a space.', "l a u"),
    ('Concatenate ["a", "n", "e"] using a semicolon.', "a;n;e"),
    ('Concatenate ["a", "b"] using a comma.', "a,b"),
    ('Concatenate ["a", "b"] using a newline.', "a\nb"),
    ('Concatenate ["G", "B", "H"] using nothing.', "GBH"),
    ('Concatenate ["G", "B"] using A  Space', "G B"),
    ('Concatenate ["x", "y"] using "-".', "x-y"),
    ('Concatenate ["x", "y"].', "xy"),
    ('Concatenate ["x", "y"]', "xy"),
    ('Concatenate ["a]", "b"] using a space.', "a] b"),
    ('Concatenate [1, 2] using a comma.', "1,2"),
    ('Concatenate [] using a space.', ""),
    ('Concatenate ["ü", "ß"] with a space.', "ü ß"),
    ('Put [these] together: ["a", "b"] using a comma.', "a,b"),
])
def test_merge_q(question, merged):
    assert tt.merge_q(question) == merged


@pytest.mark.parametrize(("question", "message"), [
    ("Concatenate the letters using a space.", "no JSON list"),
    ('Concatenate ["a", "b"] using a tab.', "unknown delimiter 'a tab'"),
    ('Concatenate ["a", ["b"]] using a space.', "item 2 of the list is not text"),
    ('Concatenate ["a", true] using a space.', "item 2"),
    ('Concatenate ["a"] and then some.', "cannot read the delimiter"),
])
def test_merge_q_errors(question, message):
    with pytest.raises(ValueError, match=message):
        tt.merge_q(question)


# ------------------------------------------------------------------ lines

def test_lines():
    assert tt.lines("first\n\n  second  \r\nthird") == ["first", "second", "third"]
    assert tt.lines("") == []
    assert tt.lines(" \n\t\n") == []


# ------------------------------------------------------------------ extract

def test_extract_group_or_whole_match():
    assert tt.extract("7 boxes of 12 eggs", r"(\d+) eggs") == "12"
    assert tt.extract("order A-1234 shipped", r"[A-Z]-\d+") == "A-1234"
    assert tt.extract("key=value", r"(?P<k>\w+)=(\w+)") == "key"
    assert tt.extract("ab", r"a(x)?b") == ""


def test_extract_errors():
    with pytest.raises(ValueError, match="does not match"):
        tt.extract("no digits", r"\d+")
    with pytest.raises(ValueError, match="invalid regular expression"):
        tt.extract("text", "(")
    with pytest.raises(ValueError, match="pattern must be a string"):
        tt.extract("text", None)


# ------------------------------------------------------------------ the .pflow side

def test_every_tool_in_text_pflow_exists_with_matching_parameters():
    import inspect
    import re

    pflow = (_PATH.parent / "text.pflow").read_text(encoding="utf-8")
    decls = re.findall(r'^tool (\w+)\(([^)]*)\) -> .*= python "text_tools:(\w+)"', pflow, re.M)
    assert {name for name, _, _ in decls} == set(tt.__all__)
    for name, params, function in decls:
        fn = getattr(tt, function)
        declared = [p.split(":")[0].strip() for p in params.split(",") if p.strip()]
        assert declared == list(inspect.signature(fn).parameters), name
        assert fn.__doc__, f"{function} has no docstring"
