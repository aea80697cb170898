"""Trigger detection for language hooks: regex triggers, sentence ends and segments.

The text of a hooked generation is checked at every character boundary of newly
arrived text, as if the text ended there, so a trigger fires at the same place
whatever the chunking of the stream (a character, a word or many tokens per
chunk).

Regex triggers
--------------
At boundary ``p`` the pattern is searched in a bounded window, the last
:data:`WINDOW` characters of ``text[:p]`` (``$``, ``\\Z`` and ``\\b`` match at the
current end; a lookahead cannot see past it).  Every match found there whose start
has not been seen before by this trigger is *new*: it is considered once (its ``if``
checked, the hook fired or not) and never again, also when more text makes it grow
(``"7 * 12 ="`` then ``"7 * 12 = "`` is the same match: same start).  Empty matches
never fire, nor do matches at the very start of a window that does not start the
text (they may be the tail of a longer match, or a ``^`` that only matches there).
The trigger point of a match is its end.

A pathological pattern cannot stall generation: with the ``regex`` package (the
default engine) each search runs under a timeout of :data:`SEARCH_TIMEOUT` seconds; a
trigger is switched off for the rest of the call (the trace records why) after
:data:`MAX_TIMEOUTS` timed-out searches, or once its searches have taken
:data:`TIME_BUDGET` seconds in all (a slow pattern that never quite times out).  An
ordinary pattern takes microseconds per search.  No search ever runs without that
bound: a pattern the ``regex`` engine cannot compile, or one too large to compile
with a bound (``lang/trigger_patterns.py``), is refused by ``pflow check``, and again
with :class:`UnboundedPattern` when the hooked call starts, before any model call,
instead of falling back to the standard ``re`` engine, which cannot interrupt a
catastrophic pattern.

Sentences
---------
A sentence ends at ``.``, ``!`` or ``?`` (optionally followed by closing quotes or
brackets) followed by whitespace, and at a newline that ends a non-empty line; a
decimal point (``2.5``) therefore does not end one.  The end of the generation ends
the last sentence.  The trigger point of a sentence end is just after its last
character (before the whitespace).  ``segment`` — the sentence being written — is
the text after the last sentence break, leading whitespace skipped; at a trigger
point just after a terminator it is the sentence that terminator ends.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

# UnboundedPattern is raised here and caught by hooks.py
from ...lang.trigger_patterns import UnboundedPattern, _regex, compile_trigger

WINDOW = 400  # characters at the end of the text a regex trigger is searched in
SEARCH_TIMEOUT = 0.02  # seconds one search may take (regex engine)
MAX_TIMEOUTS = 3  # timed-out searches per trigger and call before it is switched off
TIME_BUDGET = 2.0  # seconds of searching per trigger and call before it is switched off
ENGINE = "regex"


TERMINATORS = ".!?"
CLOSERS = "\"')]}»”’"
_BREAK = re.compile(r"[.!?][\"')\]}»”’]*\s|\n")
_SEGMENT_LOOKBACK = 4000  # a sentence longer than this starts at the lookback


@dataclass(frozen=True)
class Match:
    """A new match of a regex trigger, positions in the whole text."""

    start: int
    end: int
    text: str
    groups: dict[str, str]


class RegexTrigger:
    """One regex trigger during one hooked call: the compiled pattern, the starts of
    the matches already considered, and the time spent searching."""

    def __init__(self, pattern: str) -> None:
        """Raises :class:`UnboundedPattern` when the ``regex`` engine (the one with a
        timeout) cannot compile ``pattern``."""
        self.pattern = pattern
        try:  # `pflow check` refuses these already; a program built otherwise meets this
            self.compiled: Any = compile_trigger(pattern, _regex)
        except (re.error, OverflowError, RecursionError) as exc:
            raise UnboundedPattern(f"the pattern is not a valid regular expression ({exc})") from None
        self.timed = True
        self.window = WINDOW
        self.seen: set[int] = set()
        self.spent = 0.0
        self.timeouts = 0
        self.disabled: str | None = None  # why the trigger was switched off

    def forget_from(self, pos: int) -> None:
        """The text from ``pos`` on was edited: matches starting there are new again."""
        self.seen = {s for s in self.seen if s < pos}

    def scan(self, text: str, p: int) -> list[Match]:
        """The new matches in the window that ends at boundary ``p`` (``text[:p]``),
        in order; each is marked as seen."""
        if self.disabled is not None:
            return []
        w0 = max(0, p - self.window)
        window = text[w0:p]
        started = time.perf_counter()
        try:
            found = list(self.compiled.finditer(window, timeout=SEARCH_TIMEOUT))
        except TimeoutError:
            found = []
            self.timeouts += 1
        finally:
            self.spent += time.perf_counter() - started
        if self.timeouts >= MAX_TIMEOUTS or self.spent > TIME_BUDGET:
            self.disabled = (f"switched off: {self.timeouts} searches timed out after "
                             f"{SEARCH_TIMEOUT} s, {self.spent:.2f} s spent in all (limits: "
                             f"{MAX_TIMEOUTS} time-outs, {TIME_BUDGET} s per call)")
        out = []
        for m in found:
            if m.end() == m.start() or (w0 > 0 and m.start() == 0):
                continue  # empty, or possibly cut by the window (a longer match, or `^`)
            start = w0 + m.start()
            if start in self.seen:
                continue
            self.seen.add(start)
            groups = {k: (v if v is not None else "") for k, v in m.groupdict().items()}
            out.append(Match(start, w0 + m.end(), m.group(0), groups))
        return out


def sentence_end(text: str, p: int) -> int | None:
    """The trigger point of a sentence that ends at boundary ``p``, or ``None``.

    A sentence ends when ``text[p-1]`` is whitespace right after a terminator (with
    optional closing quotes or brackets), or is a newline ending a non-empty line.
    """
    if p < 2:
        return None
    c = text[p - 1]
    if not c.isspace() or text[p - 2].isspace():
        return None
    j = p - 1
    k = j
    while k > 0 and text[k - 1] in CLOSERS:
        k -= 1
    if k > 0 and text[k - 1] in TERMINATORS:
        return j
    return j if c == "\n" else None


def final_sentence_end(text: str) -> int | None:
    """The end of the last sentence when the generation stops (``None`` if only
    whitespace is left): the end of the text without trailing whitespace."""
    t = len(text.rstrip())
    return t if t > 0 else None


def segment_start(text: str) -> int:
    """Where the sentence being written starts in ``text`` (see the module docstring)."""
    end = len(text)
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    lo = max(0, i - _SEGMENT_LOOKBACK)
    k = lo
    for m in _BREAK.finditer(text, lo, i):
        k = m.end()
    while k < end and text[k].isspace():
        k += 1
    return k


def segment_of(text: str) -> str:
    return text[segment_start(text):]
