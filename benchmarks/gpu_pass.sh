#!/usr/bin/env bash
# Every GPU figure BENCHMARKS.md still lacks, in one command for one lease of the GPU machine.
#
#   bash benchmarks/gpu_pass.sh OUT_DIR [SCENE_800]
#
# SCENE_800: an 800 x 800 rendered scene (foveate data render --width 800 --height 800 ...);
# without it the NeRF step time is skipped. Results (JSON and logs) go to OUT_DIR.
# The GPU machine has no network: carry the wheels foveate needs beyond its torch (see the
# device tool's README) and put them on PYTHONPATH before calling this.
set -u -o pipefail
out=${1:?usage: gpu_pass.sh OUT_DIR [SCENE_800]}
scene=${2:-}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

python3 -m pytest -q -x tests/sampling tests/data tests/models tests/train 2>&1 | tee "$out/cuda_tests.log"
python3 benchmarks/sampler.py --devices cuda --json "$out/sampler_cuda.json" 2>&1 | tee "$out/sampler.log"
python3 benchmarks/step_time.py image --out "$out" 2>&1 | tee "$out/image_step_time.log"
python3 benchmarks/handler_memory.py --log2-rays 28 --device cuda --json "$out/handler_cuda.json" 2>&1 | tee "$out/handler.log"
if [ -n "$scene" ]; then
    python3 benchmarks/step_time.py nerf --scene "$scene" --out "$out" 2>&1 | tee "$out/nerf_step_time.log"
fi
