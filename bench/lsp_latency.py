"""Diagnostics latency of ``pflow lsp`` after an edit of a 1,000-line file.

A generated project (a 1,000-line ``main.pflow`` importing a 200-line ``lib.pflow``) is
opened in ``pflow lsp`` started as a subprocess and driven by a real LSP client over
stdio; then the whole text is sent again ``--edits`` times, each edit changing one
prompt's text and, every other time, breaking one call (so the diagnostics change), and
the time from sending ``didChange`` to receiving the ``publishDiagnostics`` of that
version is measured.  The server's change debounce is set to ``--debounce`` ms (0 by
default: the number is the server's own work plus the transport; an editor waits the
default debounce of 150 ms on top).  The same edits are also checked in-process
(``promptflow_dsl.lsp.analysis.analyse`` with warm caches), without the protocol.

    python bench/lsp_latency.py [--lines 1000] [--edits 100] [--debounce 0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BLOCK = '''\
# Block {i}: a record, a prompt and a flow.
type R{i} {{
  a: str
  b: int
}}

prompt p{i}(x: str) -> R{i} {{
  model lib.fast
  user "Tell me about {{{{ x }}}} ({i})"
}}

flow f{i}(x: str) -> str {{
  r = p{i}(x=x)
  s = lib.shout(text=r.a)
  return s
}}
'''

LIB_BLOCK = '''\
# Helper {i}.
prompt helper{i}(text: str) -> str = "Rewrite {{{{ text }}}} ({i})"
'''

LIB_HEAD = '''\
model fast = "openai/gpt-4o-mini" { temperature: 0.2 }

prompt shout(text: str) -> str = "Say {{ text }} loudly"
'''


def project(folder: Path, lines: int) -> tuple[Path, str]:
    (folder / "pflow.toml").write_text("")
    lib = [LIB_HEAD]
    i = 0
    while sum(b.count("\n") for b in lib) < 200:
        lib.append(LIB_BLOCK.format(i=i))
        i += 1
    (folder / "lib.pflow").write_text("\n".join(lib))
    main = ['import "lib.pflow" as lib\n']
    i = 0
    while sum(b.count("\n") + 1 for b in main) < lines:
        main.append(BLOCK.format(i=i))
        i += 1
    text = "\n".join(main)
    path = folder / "main.pflow"
    path.write_text(text)
    return path, text


def edited(text: str, n: int) -> str:
    """Edit ``n``: one prompt's text changed; odd edits also call an unknown handler."""
    out = text.replace(f"Tell me about {{{{ x }}}} ({n % 50})",
                       f"Tell me more about {{{{ x }}}} ({n % 50}, edit {n})", 1)
    if n % 2:
        out = out.replace(f"r = p{n % 50}(x=x)", f"r = q{n % 50}(x=x)", 1)
    return out


def summary(label: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"{label:44s} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   "
            f"(min {ms[0]:.1f}, max {ms[-1]:.1f}, n={len(ms)})")


async def over_stdio(path: Path, text: str, edits: int, debounce: float) -> list[float]:
    from lsprotocol import types as lsp
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("lsp-latency-bench", "1")
    arrived: dict[int, asyncio.Event] = {}
    uri = path.resolve().as_uri()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _published(params: lsp.PublishDiagnosticsParams) -> None:
        if params.uri == uri and params.version in arrived:
            arrived[params.version].set()

    await client.start_io(sys.executable, "-m", "promptflow_dsl", "lsp")
    await client.initialize_async(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(), initialization_options={"debounce": debounce}))
    client.initialized(lsp.InitializedParams())
    arrived[1] = asyncio.Event()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="pflow", version=1, text=text)))
    await arrived[1].wait()
    times = []
    for n in range(edits):
        version = n + 2
        arrived[version] = asyncio.Event()
        start = time.perf_counter()
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(version=version, uri=uri),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=edited(text, n))]))
        await arrived[version].wait()
        times.append(time.perf_counter() - start)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def in_process(path: Path, text: str, edits: int) -> list[float]:
    from promptflow_dsl.lsp.analysis import ParseCache, analyse
    from promptflow_dsl.lsp.incremental import ModuleCheckCache

    cache, modules = ParseCache(), ModuleCheckCache()
    analyse(path, text, 1, {}, cache, None, modules)
    times = []
    for n in range(edits):
        start = time.perf_counter()
        analyse(path, edited(text, n), n + 2, {}, cache, None, modules)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--debounce", type=float, default=0.0, help="the server's debounce, ms")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, text = project(Path(tmp), args.lines)
        n_lines = text.count("\n") + 1
        print(f"main.pflow: {n_lines} lines (imports a {(Path(tmp) / 'lib.pflow').read_text().count(chr(10))}-line lib.pflow); "
              f"{args.edits} edits")
        stdio = asyncio.run(over_stdio(path, text, args.edits, args.debounce))
        print(summary(f"pflow lsp over stdio (debounce {args.debounce:g} ms)", stdio))
        print(summary("in process: load + parse + check (analyse)", in_process(path, text, args.edits)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
