"""The language server: pygls wiring of the features over stdio.

Diagnostics are published when a document opens, is saved, and (after a pause of
``debounce`` milliseconds, 150 by default; ``initializationOptions.debounce`` changes
it) when it changes; open documents that import a changed one are checked again too.
Every file a check reads gets the diagnostics located in it: an imported file that is
not open gets those its open importers find.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from .. import __version__
from .analysis import Analysis
from .completion import complete
from .convert import Ranges, to_lsp
from .documents import DocumentStore, path_to_uri
from .formatting import formatting_edits
from .navigate import definition, hover, references
from .rename import RenameRefused, prepare, rename
from .symbols import document_symbols

DEFAULT_DEBOUNCE = 0.15  # seconds

log = logging.getLogger(__name__)


class RequestFailed(JsonRpcException):
    """LSP's ``RequestFailed``: a valid request the server cannot carry out."""

    CODE = -32803


class PflowServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("pflow", __version__)
        self.store = DocumentStore()
        self.debounce = DEFAULT_DEBOUNCE
        self.pending: dict[str, asyncio.TimerHandle] = {}
        # entry document uri -> file uri -> its diagnostics found checking that entry
        self.found: dict[str, dict[str, list[lsp.Diagnostic]]] = {}

    # ------------------------------------------------------------ diagnostics

    def ranges(self, analysis: Analysis) -> Ranges:
        return Ranges(analysis, self.store.text_of)

    def check_and_publish(self, uri: str, dependents: bool = True) -> None:
        self.pending.pop(uri, None)
        analysis = self.store.check(uri)
        if analysis is None:
            return
        ranges = self.ranges(analysis)
        found: dict[str, list[lsp.Diagnostic]] = {uri: []}
        for path, diags in analysis.by_path().items():
            found.setdefault(path_to_uri(path), []).extend(to_lsp(d, ranges) for d in diags)
        old = self.found.get(uri, {})
        self.found[uri] = found
        for file in {*old, *found}:
            self.publish(file)
        if dependents:
            for other in self.store.dependents(analysis.path):
                self.check_and_publish(other, dependents=False)

    def publish(self, file: str) -> None:
        if file in self.found and file in self.store.docs:
            diags = self.found[file].get(file, [])
        else:
            diags, seen = [], set()
            for per_file in self.found.values():
                for d in per_file.get(file, []):
                    key = (d.range.start.line, d.range.start.character, d.message)
                    if key not in seen:
                        seen.add(key)
                        diags.append(d)
        doc = self.store.docs.get(file)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=file, diagnostics=diags, version=doc.version if doc else None))

    def schedule(self, uri: str) -> None:
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        if self.debounce <= 0:
            self.check_and_publish(uri)
            return
        loop = asyncio.get_running_loop()
        self.pending[uri] = loop.call_later(self.debounce, self.check_and_publish, uri)

    # ------------------------------------------------------------ requests

    def analysis(self, uri: str) -> Analysis | None:
        return self.store.analysis(uri)

    def parsed(self, uri: str) -> Analysis | None:
        """The analysis of the current text, or the last one whose text parsed."""
        current = self.store.analysis(uri)
        if current is not None and current.entry.module is not None:
            return current
        return self.store.parsed.get(uri)


def build_server() -> PflowServer:
    server = PflowServer()

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: PflowServer, params: lsp.InitializeParams) -> None:
        options: Any = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("debounce"), (int, float)):
            ls.debounce = max(float(options["debounce"]), 0.0) / 1000

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: PflowServer, params: lsp.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        if ls.store.open(doc.uri, doc.text, doc.version) is not None:
            ls.check_and_publish(doc.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: PflowServer, params: lsp.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        if ls.store.change(uri, text, params.text_document.version) is not None:
            ls.schedule(uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE, lsp.SaveOptions(include_text=False))
    def did_save(ls: PflowServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.store.forget_checks()  # prompt files, demos and data may have changed on disk
        if params.text_document.uri in ls.store.docs:
            ls.check_and_publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: PflowServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.store.close(uri)
        old = ls.found.pop(uri, {})
        for file in old:
            ls.publish(file)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: PflowServer, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis = ls.parsed(params.text_document.uri)
        if analysis is None:
            return None
        text = hover(analysis, params.position)
        if text is None:
            return None
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: PflowServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
        analysis = ls.parsed(params.text_document.uri)
        if analysis is None:
            return []
        return definition(analysis, params.position, ls.ranges(analysis))

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def on_references(ls: PflowServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        analysis = ls.parsed(params.text_document.uri)
        if analysis is None:
            return []
        return references(ls.store, analysis, params.position, ls.ranges(analysis),
                          params.context.include_declaration)

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=[".", "{", "[", " ", ":"]))
    def on_completion(ls: PflowServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        doc = ls.store.docs.get(uri)
        if doc is None:
            return lsp.CompletionList(is_incomplete=False, items=[])
        items = complete(doc.text, ls.parsed(uri), params.position)
        return lsp.CompletionList(is_incomplete=False, items=items)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(ls: PflowServer, params: lsp.DocumentSymbolParams
                   ) -> list[lsp.DocumentSymbol]:
        analysis = ls.parsed(params.text_document.uri)
        if analysis is None:
            return []
        return document_symbols(analysis, ls.ranges(analysis))

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def on_prepare_rename(ls: PflowServer, params: lsp.PrepareRenameParams) -> lsp.Range:
        analysis = ls.analysis(params.text_document.uri)
        if analysis is None or analysis.entry.module is None:
            raise RequestFailed("the document does not parse")
        try:
            return prepare(analysis, params.position, ls.ranges(analysis))
        except RenameRefused as exc:
            raise RequestFailed(str(exc)) from None

    @server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
    def on_rename(ls: PflowServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit:
        analysis = ls.analysis(params.text_document.uri)
        if analysis is None or analysis.entry.module is None:
            raise RequestFailed("the document does not parse")
        try:
            return rename(ls.store, analysis, params.position, params.new_name,
                          ls.ranges(analysis))
        except RenameRefused as exc:
            raise RequestFailed(str(exc)) from None

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(ls: PflowServer, params: lsp.DocumentFormattingParams
                      ) -> list[lsp.TextEdit]:
        doc = ls.store.docs.get(params.text_document.uri)
        return formatting_edits(doc.text, params.text_document.uri) if doc else []

    return server


def serve() -> None:
    """Serve one client over stdin/stdout until it asks the server to exit."""
    build_server().start_io()
