#!/usr/bin/env bash
# What a lease of the GPU machine needs and cannot fetch there (it has no network), prepared here:
#
#   bash benchmarks/gpu_prepare.sh [BASELINE_REVISION]        # default 90a5471
#
# - .whl/: wheels (Python 3.12) of the training dependencies the H200 image lacks, at the versions
#   this checkout's .venv runs;
# - gpu/bunny800: the bunny rendered at 800 x 800 (40 training views, 8 spp), only what the
#   radiance field reads (the NeuS maps are dropped to stay under the 64 MiB a call may carry);
# - gpu/engine-REVISION/src/foveate/sampling: an earlier engine, for sampler_launches.py.
#
# Then one call of the device tool, carrying .whl and gpu:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site && BASELINE=gpu/engine-REVISION/src/foveate/sampling \
#   bash benchmarks/gpu_pass.sh $OUT/pass gpu/bunny800 530
set -euo pipefail
revision=${1:-90a5471}
python=.venv/bin/python
[ -x "$python" ] || { echo "gpu_prepare.sh: run from the repository root, with .venv set up (README)" >&2; exit 2; }

specs=()
for package in tyro docstring-parser typeguard pypng plyfile; do
    specs+=("$package==$("$python" -c 'import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))' "$package")")
done
rm -rf .whl && mkdir -p .whl gpu
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "${specs[@]}"

if [ ! -f gpu/bunny800/transforms_train.json ]; then
    .venv/bin/foveate data render --out gpu/bunny800 --scene bunny --views 40 --val-views 8 --test-views 0 \
        --width 800 --height 800 --spp 8 --no-progress
    rm -rf gpu/bunny800/{albedo,depth,image,mask,normal,mesh.ply}
    "$python" -c '
import json, pathlib
for split in pathlib.Path("gpu/bunny800").glob("transforms_*.json"):
    scene = json.loads(split.read_text())
    for frame in scene["frames"]:
        frame.pop("depth_file_path", None)
        frame.pop("normal_file_path", None)
    split.write_text(json.dumps(scene, indent=1))
'
fi

rm -rf "gpu/engine-$revision" && mkdir -p "gpu/engine-$revision"
git archive "$revision" src/foveate/sampling | tar -x -C "gpu/engine-$revision"
du -sh .whl gpu/bunny800 "gpu/engine-$revision"
