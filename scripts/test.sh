#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests drive (Debian packages),
# builds the addon and the TypeScript, runs every tap test, and ends with
# "N passed, N failed, N skipped" counted over all assertions.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "the tests build namespaces and TAP devices: run them as root" >&2
  exit 2
fi
bash scripts/install-deps.sh || exit 1
bash scripts/build.sh || exit 1
# Type-check the tests too: tap runs them transpiled, without checking types.
npx tsc -p tsconfig.test.json || exit 1

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/unit/*.test.ts test/integration/*.test.ts)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
npx tap --reporter=tap "${files[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
node scripts/tap-summary.mjs "$log"
summary=$?
[ $status -eq 0 ] && [ $summary -eq 0 ]
