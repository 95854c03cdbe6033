#!/usr/bin/env bash
# Sets up, builds and starts the hearth server (web page + KoboldAI/OpenAI APIs) on
# http://127.0.0.1:5001 with the bundled model, or with the arguments given
# (e.g. scripts/serve.sh --model my.gguf --contextsize 8192 --quantkv 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
exec build/bin/hearth "$@"
