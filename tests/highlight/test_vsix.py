"""``editors/vscode/package.sh`` builds the VS Code extension with ``vsce``: the .vsix (a
zip) holds the manifest, the grammar, the language configuration, the client and its
``vscode-languageclient`` dependency, and none of the build and test files."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from corpus_paths import REPO

VSCODE = REPO / "editors" / "vscode"


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if not (VSCODE / "package.sh").exists():
        pytest.skip("no editors/ folder in this copy of the project (an sdist leaves it out)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm is not installed (Debian: apt-get install nodejs npm; .ci/run installs it)")
    node = subprocess.run(["node", "-p", "process.versions.node"], capture_output=True, text=True)
    if int(node.stdout.split(".")[0]) < 20:
        pytest.skip(f"vsce needs Node.js 20 or later; this one is {node.stdout.strip()}")
    out = tmp_path_factory.mktemp("vsix") / "pflow.vsix"
    r = subprocess.run(["bash", str(VSCODE / "package.sh"), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return zipfile.ZipFile(out)


def test_vsix_holds_the_extension(vsix: zipfile.ZipFile):
    names = set(vsix.namelist())
    for name in ("extension.vsixmanifest", "[Content_Types].xml", "extension/package.json",
                 "extension/extension.js", "extension/language-configuration.json",
                 "extension/syntaxes/pflow.tmLanguage.json", "extension/readme.md",
                 "extension/changelog.md", "extension/LICENSE.txt",
                 "extension/node_modules/vscode-languageclient/package.json"):
        assert name in names, name
    assert not [n for n in names if n.startswith(("extension/test/", "extension/node_modules/@vscode/vsce/",
                                                  "extension/node_modules/vscode-textmate/"))]
    assert "extension/syntaxes/generate.py" not in names and "extension/package.sh" not in names


def test_vsix_manifest_contributes_the_language(vsix: zipfile.ZipFile):
    manifest = json.loads(vsix.read("extension/package.json"))
    assert manifest["main"] == "./extension.js"
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "pflow" and language["extensions"] == [".pflow"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar == {"language": "pflow", "scopeName": "source.pflow",
                       "path": "./syntaxes/pflow.tmLanguage.json"}
    assert manifest["contributes"]["configuration"]["properties"]["pflow.server.command"]["default"] == "pflow"
    packed = json.loads(vsix.read("extension/syntaxes/pflow.tmLanguage.json"))
    assert packed == json.loads((VSCODE / "syntaxes" / "pflow.tmLanguage.json").read_text(encoding="utf-8"))
    config = json.loads(vsix.read("extension/language-configuration.json"))
    assert config["comments"] == {"lineComment": "#"}
    client = vsix.read("extension/extension.js").decode()
    assert 'require("vscode-languageclient/node")' in client and "TransportKind.stdio" in client
    assert b"pflow" in vsix.read("extension.vsixmanifest")


def test_extension_client_loads_in_node(vsix: zipfile.ZipFile, tmp_path: Path):
    """The client module loads with its packed dependencies (``vscode`` itself stubbed)
    and exports activate/deactivate."""
    vsix.extractall(tmp_path)
    stub = tmp_path / "node_modules" / "vscode"
    stub.mkdir(parents=True)
    # any property of the stub is again a stub, callable and constructible
    (stub / "index.js").write_text(
        "const stub = () => new Proxy(function () {}, {\n"
        "  get: (target, key) => (key === 'then' || typeof key === 'symbol' ? undefined : stub()),\n"
        "  construct: () => stub(), apply: () => stub() });\n"
        "module.exports = stub();\n", encoding="utf-8")
    script = ("const m = require(process.argv[1]);"
              "console.log(typeof m.activate, typeof m.deactivate);")
    r = subprocess.run(["node", "-e", script, str(tmp_path / "extension" / "extension.js")],
                       capture_output=True, text=True, env={"NODE_PATH": str(tmp_path / "node_modules"),
                                                            "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["function", "function"]
