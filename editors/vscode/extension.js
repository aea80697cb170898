// The pflow extension's client: starts `pflow lsp` over stdio for .pflow files.
// Plain CommonJS, no build step; `vscode-languageclient` is its only dependency.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client = null;

function serverOptions(config) {
  const command = config.get("server.command", "pflow");
  const args = config.get("server.args", ["lsp"]);
  return { command, args, transport: TransportKind.stdio };
}

async function start(context) {
  const config = vscode.workspace.getConfiguration("pflow");
  if (!config.get("server.enabled", true)) {
    return;
  }
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "pflow" },
      { scheme: "untitled", language: "pflow" },
    ],
    initializationOptions: { debounce: config.get("server.debounce", 150) },
    outputChannelName: "pflow",
  };
  client = new LanguageClient("pflow", "pflow language server", serverOptions(config), clientOptions);
  try {
    await client.start();
  } catch (err) {
    const command = config.get("server.command", "pflow");
    vscode.window.showErrorMessage(
      `pflow: could not start the language server with "${command} lsp" (${err.message || err}). ` +
        "Install it with pip install 'promptflow-dsl[lsp]', or set pflow.server.command to the full path of pflow."
    );
    client = null;
  }
}

async function stop() {
  if (client) {
    const running = client;
    client = null;
    await running.stop();
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("pflow.restartServer", async () => {
      await stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("pflow.server")) {
        await stop();
        await start(context);
      }
    })
  );
  await start(context);
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
