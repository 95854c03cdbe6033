#!/bin/bash
# The page in headless Chromium: type, generate, see streamed text, stop, chat; screenshots
# are kept in $HEARTH_TEST_OUT. Needs node, chromium and tests/server/node/node_modules
# (.ci/deps-server.sh installs them): fails without them.
. "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "FAIL: node is not installed (run .ci/deps-server.sh)"; exit 1; }
[ -d "$TESTDIR/node/node_modules/playwright-core" ] || { echo "FAIL: npm package playwright-core missing (run .ci/deps-server.sh)"; exit 1; }
command -v chromium >/dev/null || [ -n "${CHROMIUM:-}" ] || { echo "FAIL: chromium is not installed (run .ci/deps-server.sh)"; exit 1; }
start_server --contextsize 512 --test-token-delay-ms 5
check "the page tests pass" node "$TESTDIR/node/page.mjs" "$BASE" "$HEARTH_TEST_OUT"
finish
