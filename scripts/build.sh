#!/usr/bin/env bash
# Installs npm dependencies (which builds the native addon and better-sqlite3 from source)
# and compiles the TypeScript. Skips what is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
[ -f build/Release/switchyard.node ] || npx node-gyp rebuild >/dev/null
[ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || npm rebuild better-sqlite3 --loglevel=error
npx tsc -p tsconfig.json
