#!/usr/bin/env bash
# Install what is missing, build, and run every test (unit and end to end) with tap.
#   scripts/test.sh [tap options / test files...]
# End-to-end tests need root, /dev/fuse, losetup and fio; without them they skip with a reason.
# Exits with tap's exit code.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash "$REPO/scripts/setup.sh"
# tap only transpiles TypeScript: type errors in src, bench or the tests fail here instead.
npm run --silent typecheck
exec npx --no-install tap "$@"
