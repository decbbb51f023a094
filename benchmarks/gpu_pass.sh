#!/usr/bin/env bash
# Every GPU figure BENCHMARKS.md still lacks, in one command for one lease of the GPU machine.
#
#   bash benchmarks/gpu_pass.sh OUT_DIR [SCENE_800] [SECONDS]
#
# SCENE_800: an 800 x 800 rendered scene (foveate data render --width 800 --height 800 ...);
# without it the NeRF step time is skipped. SECONDS (default 540) bounds the whole pass: the
# short measurements run first, then the suite's large photos at GPU size get what is left.
# Results (JSON, logs, the suite's reports) go to OUT_DIR. With BASELINE set to a copy of an
# earlier src/foveate/sampling, the engine's launches and times are also measured against it.
# The GPU machine has no network: `bash benchmarks/gpu_prepare.sh` prepares the wheels foveate needs
# beyond its torch, the 800 x 800 scene and a baseline engine here; carry .whl and gpu, and put the
# installed wheels on PYTHONPATH before calling this (gpu_prepare.sh's header has the call).
set -u -o pipefail
out=${1:?usage: gpu_pass.sh OUT_DIR [SCENE_800] [SECONDS]}
scene=${2:-}
deadline=$((SECONDS + ${3:-540}))
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

timeout 120 python3 -m pytest -q -x -p no:cacheprovider tests/sampling tests/models/test_gaussians.py 2>&1 \
    | tail -5 | tee "$out/cuda_tests.log"
timeout 90 python3 benchmarks/sampler.py --devices cuda --json "$out/sampler_cuda.json" 2>&1 | tee "$out/sampler.log"
timeout 60 python3 benchmarks/handler_memory.py --log2-rays 28 --device cuda --json "$out/handler_cuda.json" 2>&1 \
    | tee "$out/handler.log"
if [ -n "${BASELINE:-}" ]; then
    timeout 90 python3 benchmarks/sampler_launches.py --against "$BASELINE" --batches 8192 65536 1048576 \
        --json "$out/sampler_launches.json" 2>&1 | tee "$out/sampler_launches.log"
fi
# The sampler's steps captured in one CUDA graph against eager: is 3% of a step reachable by graphs?
timeout 60 python3 benchmarks/sampler_graph.py --json "$out/sampler_graph.json" 2>&1 | tee "$out/sampler_graph.log"
for batch in 65536 1048576; do  # the preset's batch, and 2^20 pixels
    timeout 90 python3 benchmarks/step_time.py image --batch-size "$batch" --out "$out/image_$batch" \
        --strategies uniform error_weighted error_weighted+refresh adaptive 2>&1 \
        | tee "$out/image_step_time_$batch.log"
done
# Sorted batches against shuffled on the GPU (on the CPU sorted steps are 0.92-0.98x): atomics may crowd.
timeout 90 python3 benchmarks/draw_order.py image --preset default --device cuda --images astronaut retina \
    --json "$out/draw_order_cuda.json" 2>&1 | tee "$out/draw_order.log"
if [ -n "$scene" ]; then
    timeout 150 python3 benchmarks/step_time.py nerf --scene "$scene" --out "$out" 2>&1 | tee "$out/nerf_step_time.log"
fi
left=$((deadline - SECONDS - 20))
if [ "$left" -gt 60 ]; then
    timeout "$left" python3 benchmarks/suite.py --size gpu --workers 1 --seeds 3 \
        --only image-retina image-hubble_deep_field --out "$out/suite" 2>&1 | tee "$out/suite.log"
    python3 benchmarks/suite.py --summarise "$out/suite" > /dev/null 2>&1
fi
echo "gpu_pass: done in $SECONDS s"
