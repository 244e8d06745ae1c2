#!/usr/bin/env bash
# Idempotent install of msdet's self-contained environment into $VENV (default .venv).
# First run builds mmcv 2.1.0 with its compiled ops from source (~25 min on 2 cores); pip keeps the
# built wheel in its cache, so later installs on the same machine take a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
ops_ok() { "$VENV/bin/python" -c 'from mmcv.ops import nms, RoIAlign' >/dev/null 2>&1; }

# torch: the local CPU wheel, never an unpinned torch (that pulls a multi-GB CUDA build).
pip install -q torch==2.13.0 'setuptools<82' wheel ninja psutil 'numpy<2' 'opencv-python<4.11'
if ! ops_ok; then
  # mmcv's setup.py imports torch: without --no-build-isolation it would silently build without _ext.
  MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) FORCE_CUDA=0 pip install --no-build-isolation mmcv==2.1.0
fi
pip install -q mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 ftfy regex pycocotools \
  matplotlib pytest torch==2.13.0 'numpy<2' 'opencv-python<4.11'
# msdet[deploy]: ONNX export and onnxruntime; 'numpy<2' again so that pip keeps numpy 1.x
pip install -q onnx==1.23.2 onnxruntime==1.32.0 'numpy<2'
pip install -q --no-build-isolation --no-deps -e .
if ! ops_ok; then
  echo "ERROR: mmcv was installed without its compiled ops (mmcv._ext missing)." >&2
  echo "  Remove it ('$VENV/bin/pip uninstall -y mmcv'), purge its cached wheel ('pip cache remove mmcv')" >&2
  echo "  and rerun: the build must see torch (MMCV_WITH_OPS=1, --no-build-isolation)." >&2
  exit 1
fi
"$VENV/bin/python" -c 'import torch, mmcv, mmdet, mmseg, msdet, onnxruntime; print("msdet env ok: torch", torch.__version__, "mmcv", mmcv.__version__, "mmdet", mmdet.__version__, "mmseg", mmseg.__version__, "onnxruntime", onnxruntime.__version__)'
