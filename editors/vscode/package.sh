#!/usr/bin/env bash
# Build the VS Code extension: pflow-<version>.vsix in this folder (or the path given).
#
#   ./package.sh                 # npm dependencies (once), then vsce package
#   ./package.sh OUT.vsix        # the same, written to OUT.vsix
#   ./package.sh --deps          # only install the npm dependencies
#
# Dependencies come from package-lock.json (npm ci). They are installed again only
# when the lock changed since the last install (a copy of it is kept in node_modules).
# Install scripts and optional packages are skipped: vsce only needs them to sign and
# publish, not to package.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null; then
  echo "package.sh: npm is not installed (Debian: apt-get install nodejs npm)" >&2
  exit 2
fi

stamp=node_modules/.pflow-package-lock.json
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  npm ci --no-audit --no-fund --ignore-scripts --omit=optional --loglevel=error
  cp package-lock.json "$stamp"
fi
[ "${1:-}" = "--deps" ] && exit 0

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "package.sh: vsce needs Node.js 20 or later; this one is $(node --version)" >&2
  exit 2
fi
version=$(node -p 'require("./package.json").version')
out=${1:-pflow-$version.vsix}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
npx --no-install vsce package --allow-missing-repository --out "$out"
