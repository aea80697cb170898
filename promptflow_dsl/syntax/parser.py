"""The parse stage: ``SourceFile`` → Lark parse tree, or a located syntax error.

One memoized LALR parser is built from ``grammar/pflow.lark``; its tables are
cached on disk (in the user's cache folder, keyed on the grammar's digest and signed
with a per-user key, :func:`get_parser`) so start-up stays fast.  Lark types never leave the ``syntax`` package.
Syntax errors say what was expected; common mistakes are recognised from
examples with Lark's ``match_examples`` and get a tailored message.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import secrets
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic
from ..resources import grammar_path
from .source import SourceFile

_LOCK = threading.Lock()


class SyntaxFailure(Exception):
    """Raised by :func:`parse` with the diagnostic of the first syntax error."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.headline())
        self.diagnostic = diagnostic


_KEY_BYTES = 32
_MAGIC = b"pflow-parser-cache/2\n"


def _cache_dir() -> Path:
    base = os.environ.get("PFLOW_PARSER_CACHE_DIR")
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "promptflow-dsl")
    return Path(base)


def _cache_key(folder: Path) -> bytes | None:
    """The per-user key that signs the parser cache: ``parser-cache.key`` in the cache
    folder, 32 random bytes created with mode 0600.  ``None`` (no cache) when the folder
    cannot be written or the key file is not a private regular file of this user."""
    path = folder / "parser-cache.key"
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(_KEY_BYTES))
        fd = os.open(path, flags)
        try:
            info = os.fstat(fd)
            owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
            if not stat.S_ISREG(info.st_mode) or not owner_ok or info.st_mode & 0o077:
                return None
            key = os.read(fd, _KEY_BYTES + 1)
        finally:
            os.close(fd)
    except OSError:
        return None
    return key if len(key) == _KEY_BYTES else None


def _cache_path(folder: Path, grammar: str) -> Path:
    import lark

    ident = hashlib.sha256("\0".join((grammar, lark.__version__, sys.version, repr(_OPTIONS),
                                      repr(_KeywordsAsNames.always_accept))).encode()).hexdigest()
    return folder / f"parser-{ident[:32]}.cache"


def _load_cached(path: Path, key: bytes) -> Any:
    """The parser saved in ``path`` when its HMAC-SHA256 under ``key`` verifies, else
    ``None``; nothing in the file is unpickled before it verifies."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC)
    if not data.startswith(_MAGIC) or len(data) < head + 32:
        return None
    tag, payload = data[head:head + 32], data[head + 32:]
    if not hmac.compare_digest(tag, hmac.new(key, payload, hashlib.sha256).digest()):
        return None
    from lark import Lark

    try:
        parser = Lark.__new__(Lark)
        # Lark's own cache loads this way; the options not stored in the file are given here
        return parser._load(io.BytesIO(payload), postlex=_KeywordsAsNames(),
                            propagate_positions=True)
    except Exception:  # a file of another Lark version: rebuild
        return None


def _store(path: Path, key: bytes, parser: Any) -> None:
    """Save ``parser`` to ``path`` with its HMAC (atomically; failures are ignored)."""
    buffer = io.BytesIO()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        parser.save(buffer)
        payload = buffer.getvalue()
        tag = hmac.new(key, payload, hashlib.sha256).digest()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + tag + payload)
        os.replace(tmp, path)
    except Exception:
        try:
            tmp.unlink()
        except OSError:
            pass


_TEXT = threading.local()
_COLON_AHEAD = re.compile(r"(?:[ \t\f\r\n]++|#[^\n]*+)*+:")  # blanks and comments, then `:` (possessive: no backtracking)


class _KeywordsAsNames:
    """Post-lexer: a keyword directly followed by ``:`` is a field name or record key.

    No construct of the language puts ``:`` after a keyword, so this only turns
    ``model: str`` (a field) or ``{type: 1}`` (a record key) into names where the
    contextual lexer alone would still see a keyword (after a value, where a new
    declaration or an operator could also follow).
    """

    #: ``NAME`` is lexed in every parser state, so a keyword ends at an identifier
    #: boundary: ``flowmain`` is one (unexpected) name, never ``flow`` and ``main``
    #: (Lark then tells keywords from names by the whole word it matched)
    always_accept: tuple[str, ...] = ("NAME",)

    def process(self, stream: Any) -> Any:
        text = getattr(_TEXT, "value", None)
        previous = None
        for tok in _eval_words(stream):
            if (text is not None and tok.type != "NAME" and str(tok.value).isidentifier()
                    and _COLON_AHEAD.match(text, tok.end_pos)):
                tok.type = "NAME"
            elif tok.type == "NAME" and tok.value == "try" and previous in _OPERATORS:
                # `1 + try ...`: the lexer read the reserved word as a name, since `try`
                # cannot start an operand; keep it a keyword so the error is at `try`
                tok.type = "TRY"
            previous = tok.type
            yield tok


# Tokens after which an operand follows but a `try` expression may not start.
_OPERATORS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "OR", "AND", "NOT", "IN",
                        "CONTAINS", "IF", "LESSTHAN", "MORETHAN", "__ANON_1", "__ANON_2",
                        "__ANON_3", "__ANON_4"})


_EVAL_ITEM_WORDS = frozenset({"DATA", "RUN", "METRIC", "THRESHOLD"})
_OPENING = frozenset({"LBRACE", "LPAR", "LSQB"})
_CLOSING = frozenset({"RBRACE", "RPAR", "RSQB"})


def _eval_words(stream: Any) -> Any:
    """``eval`` is a keyword only at the top level, and ``data``, ``run``, ``metric`` and
    ``threshold`` only where they start an item of an eval's body; anywhere else they
    are names.

    The contextual lexer reads a word as a keyword wherever the LALR state accepts it,
    and the state after a value accepts everything that may follow a value somewhere,
    eval items included; without this a hook's `run` clause or a flow variable `data`
    written after a string would be read as a keyword.
    """
    depth = 0
    body: int | None = None  # bracket depth of the eval body we are in
    opening = False  # read `eval`: its `{` opens a body
    for tok in stream:
        kind = tok.type
        if kind == "EVAL":
            if depth == 0:
                opening = True
            else:
                tok.type = "NAME"
        elif kind in _EVAL_ITEM_WORDS and depth != body:
            tok.type = "NAME"
        elif kind in _OPENING:
            depth += 1
            if opening and kind == "LBRACE":
                body, opening = depth, False
        elif kind in _CLOSING:
            if depth == body:
                body = None
            depth = max(depth - 1, 0)
        yield tok


_OPTIONS: dict[str, Any] = dict(parser="lalr", lexer="contextual", propagate_positions=True,
                                maybe_placeholders=False)


@lru_cache(maxsize=1)
def get_parser() -> Any:
    """The memoized Lark LALR parser (built once per process).

    Its tables are cached on disk in the user's cache folder, signed with an
    HMAC-SHA256 under a per-user random key (``parser-cache.key``, mode 0600): a cache
    file that does not verify is never unpickled but rebuilt, so a file planted in the
    cache folder cannot run code.
    """
    from lark import Lark

    with _LOCK:
        grammar = grammar_path().read_text(encoding="utf-8")
        folder = _cache_dir()
        key = _cache_key(folder)
        path = _cache_path(folder, grammar) if key is not None else None
        if key is not None and path is not None:
            cached = _load_cached(path, key)
            if cached is not None:
                return cached
        parser = Lark(grammar, postlex=_KeywordsAsNames(), **_OPTIONS)
        if key is not None and path is not None:
            _store(path, key, parser)
        return parser


def build_strict() -> Any:
    """Build the grammar with ``strict=True`` (fails on any conflict or terminal collision)."""
    from lark import Lark

    grammar = grammar_path().read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", strict=True)


@contextmanager
def with_text(text: str) -> Iterator[None]:
    """Make ``text`` the text the post-lexer looks ahead in while it is parsed (this
    thread only)."""
    previous = getattr(_TEXT, "value", None)
    _TEXT.value = text
    try:
        yield
    finally:
        _TEXT.value = previous


def parse_text(text: str) -> Any:
    """Parse ``text`` with the shared parser into a Lark tree (raises Lark's
    ``UnexpectedInput``)."""
    parser = get_parser()
    with with_text(text):
        return parser.parse(text)


def parse(source: SourceFile) -> Any:
    """Parse a source file into a Lark tree.

    Raises :class:`SyntaxFailure` carrying a located diagnostic on the first syntax error.
    """
    from lark.exceptions import UnexpectedInput

    from .syntax_errors import to_diagnostic

    try:
        return parse_text(source.text)
    except UnexpectedInput as exc:
        raise SyntaxFailure(to_diagnostic(exc, source)) from None
