"""The open documents: their unsaved texts (the overlay the loader reads instead of
the files on disk) and the last analysis of each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import pathname2url

from .analysis import Analysis, ParseCache, ResultCache, analyse
from .incremental import ModuleCheckCache


def uri_to_path(uri: str) -> Path | None:
    """The file of a ``file:`` URI; ``None`` for any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path)).resolve()


def path_to_uri(path: Path) -> str:
    return "file://" + pathname2url(str(path.resolve()))


@dataclass
class Document:
    uri: str
    path: Path
    text: str
    version: int | None


class DocumentStore:
    """Open ``.pflow`` documents by URI, and what was last found checking each."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.parse = ParseCache()
        self.results = ResultCache()
        self.modules = ModuleCheckCache()
        self.analyses: dict[str, Analysis] = {}  # uri -> the newest analysis
        self.parsed: dict[str, Analysis] = {}  # uri -> the newest analysis whose text parsed

    def open(self, uri: str, text: str, version: int | None) -> Document | None:
        path = uri_to_path(uri)
        if path is None:
            return None
        doc = Document(uri, path, text, version)
        self.docs[uri] = doc
        return doc

    def change(self, uri: str, text: str, version: int | None) -> Document | None:
        doc = self.docs.get(uri)
        if doc is None:
            return self.open(uri, text, version)
        doc.text, doc.version = text, version
        return doc

    def close(self, uri: str) -> None:
        self.docs.pop(uri, None)
        self.analyses.pop(uri, None)
        self.parsed.pop(uri, None)

    def forget_checks(self) -> None:
        """Drop cached check results (files other than ``.pflow`` ones may have changed)."""
        self.results.clear()
        self.modules.clear()

    def overlay(self) -> dict[str, str]:
        """Resolved path (as text) -> unsaved text, for every open document."""
        return {str(d.path): d.text for d in self.docs.values()}

    def text_of(self, path: Path) -> str | None:
        """The text of ``path``: the open buffer, else the file (``None`` when unreadable)."""
        for doc in self.docs.values():
            if doc.path == path:
                return doc.text
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    def analysis(self, uri: str) -> Analysis | None:
        """The analysis of the document's current text (made now if it is out of date)."""
        doc = self.docs.get(uri)
        if doc is None:
            return None
        found = self.analyses.get(uri)
        if found is not None and found.text == doc.text:
            return found
        return self.check(uri)

    def check(self, uri: str) -> Analysis | None:
        doc = self.docs.get(uri)
        if doc is None:
            return None
        result = analyse(doc.path, doc.text, doc.version, self.overlay(), self.parse,
                         self.results, self.modules)
        self.analyses[uri] = result
        if result.entry.module is not None:
            self.parsed[uri] = result
        return result

    def dependents(self, path: Path) -> list[str]:
        """Open documents (other than ``path``'s) whose last analysis read ``path``."""
        return [uri for uri, a in self.analyses.items()
                if a.path != path and path in a.module_paths()]
