// Tokenize .pflow files with the extension's TextMate grammar, as VS Code does
// (vscode-textmate + the Oniguruma regex engine compiled to WebAssembly).
//
//   node test/tokenize.js FILE...
//
// Prints one JSON object: {"FILE": {"lines": [[[text, "scope scope ..."], ...], ...],
// "stopped": [line numbers where tokenizing stopped early]}, ...}.  A grammar whose
// regular expressions do not compile makes it exit with status 1.
"use strict";

const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const GRAMMAR = path.join(__dirname, "..", "syntaxes", "pflow.tmLanguage.json");

async function main(files) {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === "source.pflow" ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, "utf8"), GRAMMAR) : null,
  });
  const grammar = await registry.loadGrammar("source.pflow");
  const out = {};
  for (const file of files) {
    // as VS Code reads a file: without its byte-order mark, line ends as \n
    const text = fs.readFileSync(file, "utf8").replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
    let stack = vsctm.INITIAL;
    const lines = [];
    const stopped = [];
    text.split("\n").forEach((line, i) => {
      const result = grammar.tokenizeLine(line, stack, 1000);
      if (result.stoppedEarly) {
        stopped.push(i + 1);
      }
      lines.push(result.tokens.map((t) => [line.slice(t.startIndex, t.endIndex), t.scopes.join(" ")]));
      stack = result.ruleStack;
    });
    out[file] = { lines, stopped };
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`tokenize.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
