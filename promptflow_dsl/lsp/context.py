"""What surrounds a cursor, read from the text itself (which may not parse while the
user types): the enclosing blocks, an open ``{{ ... }}``, an open sketch hole, the
dotted name before the cursor, the comment lines above a declaration."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Cursor:
    """The cursor at ``offset`` of ``text``."""

    text: str
    offset: int
    blocks: list[str] = field(default_factory=list)  # first word of each open `{` line
    in_string: bool = False
    string_start: int = -1

    @property
    def line_prefix(self) -> str:
        start = self.text.rfind("\n", 0, self.offset) + 1
        return self.text[start:self.offset]


def scan(text: str, offset: int) -> Cursor:
    """Read ``text`` up to ``offset``: braces outside strings and comments open and close
    blocks (each named by the first word of the line it opens on)."""
    cur = Cursor(text, offset)
    i = 0
    n = min(offset, len(text))
    while i < n:
        ch = text[i]
        if ch == "#":
            nl = text.find("\n", i)
            if nl == -1 or nl >= n:
                break
            i = nl + 1
            continue
        if ch == '"':
            if text.startswith('"""', i):
                close = text.find('"""', i + 3)
                if close == -1 or close >= n:
                    cur.in_string, cur.string_start = True, i
                    return cur
                i = close + 3
                continue
            j = i + 1
            while j < n and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                cur.in_string, cur.string_start = True, i
                return cur
            i = j + 1
            continue
        if ch == "{":
            start = text.rfind("\n", 0, i) + 1
            m = _HEAD.match(text, start)
            cur.blocks.append(m.group(1) if m else "")
        elif ch == "}" and cur.blocks:
            cur.blocks.pop()
        i += 1
    return cur


def open_template(text: str, offset: int) -> int | None:
    """The offset just after the ``{{`` the cursor is inside, or ``None``."""
    start = text.rfind("{{", 0, offset)
    if start == -1:
        return None
    if text.find("}}", start, offset) != -1:
        return None
    return start + 2


def open_hole(text: str, offset: int) -> str | None:
    """The name of the sketch hole ``[name ...`` the cursor is in (after its name), or
    ``None``."""
    start = text.rfind("[", 0, offset)
    if start == -1 or (start > 0 and text[start - 1] == "["):
        return None
    inside = text[start + 1:offset]
    m = _WORD.match(inside)
    if m is None or m.end() == len(inside) or "]" in inside:
        return None
    if inside[m.end()] not in " \t\n:":
        return None
    return m.group(0)


def dotted_before(prefix: str) -> tuple[str, str] | None:
    """``("a.b", "pa")`` when ``prefix`` ends in ``a.b.pa`` (a dotted name, then what is
    being typed after the last dot); ``None`` without a dot."""
    m = re.search(r"((?:[A-Za-z_]\w*\.)+)(\w*)$", prefix)
    if m is None:
        return None
    return m.group(1)[:-1], m.group(2)


def word_at(text: str, offset: int) -> tuple[str, int] | None:
    """The dotted name around ``offset``, cut after the part the cursor is on, and its
    start offset: in ``{{ item.title }}`` the cursor on ``item`` gives ``item``, on
    ``title`` gives ``item.title``."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    end = offset
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    word = text[start:end].strip(".")
    if not word or not (word[0].isalpha() or word[0] == "_"):
        return None
    return word, start


def doc_comment(text: str, line: int) -> str:
    """The ``#`` comment lines right above 1-based ``line``, without their ``#``."""
    lines = text.split("\n")
    out: list[str] = []
    i = line - 2
    while 0 <= i < len(lines) and lines[i].lstrip().startswith("#"):
        body = lines[i].lstrip()[1:]
        out.append(body[1:] if body.startswith(" ") else body)
        i -= 1
    return "\n".join(reversed(out)).strip("\n")
