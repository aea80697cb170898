"""pflow diagnostics as LSP diagnostics: severity, range, and each note as related
information (a location and its message)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lsprotocol import types as lsp

from ..diagnostics import Diagnostic, Span
from .analysis import Analysis
from .documents import path_to_uri
from .positions import Lines


class Ranges:
    """Span -> LSP range, with the texts of an analysis (UTF-16 columns)."""

    def __init__(self, analysis: Analysis, text_of: Callable[[Path], str | None]) -> None:
        self.analysis = analysis
        self.text_of = text_of
        self.lines: dict[str, Lines | None] = {}
        for lm in analysis.load.modules.values():
            self.lines[lm.source.uri] = Lines(lm.source.text)

    def _lines(self, file: str) -> Lines | None:
        if file not in self.lines:
            text = self.text_of(self.analysis.path_of(file))
            self.lines[file] = Lines(text) if text is not None else None
        return self.lines[file]

    def range(self, span: Span) -> lsp.Range:
        lines = self._lines(span.file)
        if lines is None:
            start = (span.line - 1, span.col - 1)
            end = (span.end_line - 1, span.end_col - 1)
        else:
            start, end = lines.lsp_range(span)
        return lsp.Range(lsp.Position(*start), lsp.Position(*end))

    def location(self, span: Span) -> lsp.Location:
        return lsp.Location(path_to_uri(self.analysis.path_of(span.file)), self.range(span))


def to_lsp(d: Diagnostic, ranges: Ranges) -> lsp.Diagnostic:
    related = [lsp.DiagnosticRelatedInformation(ranges.location(span), message)
               for span, message in d.notes]
    severity = lsp.DiagnosticSeverity.Error if d.is_error else lsp.DiagnosticSeverity.Warning
    return lsp.Diagnostic(range=ranges.range(d.span), message=d.message, severity=severity,
                          source="pflow", related_information=related or None)
