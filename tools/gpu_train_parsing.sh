#!/usr/bin/env bash
# Fine-tune the parsing U-Net on a GPU machine that has no ../shared/data: the training photos come
# as a packed clean set (python -m occgui.training.parsing.pack pack ~/.cache/occgui .gpudata/train_pack
# --count 4500) and the occluders as a copy (.gpudata/occluders). Results go to $OUT (or ./gpu_out).
# Settings (environment): PY, MINUTES, BATCH, LR, SIZE, WORKERS, SEED.
set -uo pipefail
PY=${PY:-python3}; OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
nvidia-smi -L 2>/dev/null; echo "cores $(nproc)"
mount -o remount,size=16G /dev/shm 2>/dev/null; df -h /dev/shm | tail -1
$PY -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__, 'numpy', numpy.__version__)"
timeout 120 $PY -m pytest -q tests/test_parsing_unet.py -k "cuda or onnx_engine or batch_stream or packed" 2>&1 | tail -3
WORK=$(mktemp -d); mkdir -p "$WORK/lfw"
$PY -m occgui.training.parsing.pack unpack .gpudata/train_pack "$WORK/cache" || exit 3
$PY -m occgui.training.parsing.train --data "$WORK/lfw" --occluders .gpudata/occluders --cache "$WORK/cache" -o "$WORK/run" \
    --minutes "${MINUTES:-6.3}" --batch-size "${BATCH:-32}" --lr "${LR:-0.002}" --input-size "${SIZE:-256}" \
    --init checkpoints/parsing_unet.onnx --loader-workers "${WORKERS:-14}" --threads 2 --eval-photos 0 \
    --eval-every 0 --checkpoint-every 2 --quiet --seed "${SEED:-3}" 2>&1 | tee "$OUT/train.log"
rc=$?
cp "$WORK/run/log.jsonl" "$OUT/" 2>/dev/null; cp "$WORK/run/parsing_unet.onnx" "$OUT/" 2>/dev/null
tail -2 "$WORK/run/log.jsonl" 2>/dev/null
exit $rc
