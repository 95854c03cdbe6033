#!/bin/bash
# The official OpenAI client library (npm "openai") against hearth. Needs node and
# tests/server/node/node_modules (.ci/deps-server.sh installs them): fails without them.
. "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "FAIL: node is not installed (run .ci/deps-server.sh)"; exit 1; }
[ -d "$TESTDIR/node/node_modules/openai" ] || { echo "FAIL: npm package openai missing (run .ci/deps-server.sh)"; exit 1; }
start_server --contextsize 512
check "the openai client tests pass" node "$TESTDIR/node/openai.mjs" "$BASE"
finish
