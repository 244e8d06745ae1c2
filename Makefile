# msdet: `make demo` trains + evaluates the main path on the embedded dataset,
# `make test` runs the test suite, `make study STUDY=...` runs a design study
# (model_zoo.md, "Design studies"). All install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CFG := configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py
DEMO_DIR := work_dirs/demo
# CPU threads of the demo's processes: the CPUs this process may use (its
# affinity) less those other processes keep busy (1-minute load average),
# at least 1; on a shared machine more threads than idle CPUs wait on each
# other. Evaluated when the demo runs; set DEMO_THREADS to override.
DEMO_THREADS ?= $(shell $(PY) -c 'import os; n = len(os.sched_getaffinity(0)); \
	idle = os.cpu_count() - os.getloadavg()[0]; print(max(1, min(n, round(idle))))')

.PHONY: install demo test study study-data

install:
	VENV=$(VENV) bash tools/install.sh

demo: install
	$(PY) tools/make_coco_demo.py data/coco_demo
	OMP_NUM_THREADS=$(DEMO_THREADS) $(PY) tools/train.py $(DEMO_CFG) \
		--work-dir $(DEMO_DIR)
	OMP_NUM_THREADS=$(DEMO_THREADS) $(PY) tools/test.py $(DEMO_CFG) \
		$$(cat $(DEMO_DIR)/last_checkpoint) --work-dir $(DEMO_DIR)
	OMP_NUM_THREADS=$(DEMO_THREADS) $(PY) tools/analysis/scale_benchmark.py $(DEMO_CFG) \
		$$(cat $(DEMO_DIR)/last_checkpoint) --scales 128 192 256 320 \
		--work-dir $(DEMO_DIR)/scale

test: install
	$(PY) -m pytest tests -q

# Design studies on the embedded multi-scale dataset: STUDY=backbones,
# mutualnet or resizable; SEEDS, PARALLEL (runs at a time) and STUDY_ARGS
# (more tools/analysis/study.py arguments, e.g. --epochs 2) may be set.
# Resumable: rerunning skips finished runs.
STUDY ?= backbones
SEEDS ?= 0 1 2
PARALLEL ?= 1
STUDY_ARGS ?=
MS_DATA := data/coco_multiscale
SB := configs/study/backbones/mask_rcnn
SM := configs/study/mutualnet/mask_rcnn_slimvgg16_fpn_quarter_ms
SR := configs/study/resizable/mask_rcnn_rsr50_fpn_quarter_ms
STUDY_backbones := $(SB)_r50_fpn_quarter_ms.py $(SB)_x50_fpn_quarter_ms.py \
	$(SB)_psr50_fpn_quarter_ms.py $(SB)_scalenet50_fpn_quarter_ms.py \
	$(SB)_ex50_fpn_quarter_ms.py --names R50 X50 PS-R50 ScaleNet-50 \
	Elastic-X50 --baseline R50
STUDY_mutualnet := $(SM)_usnet.py $(SM)_mutualnet.py $(SM)_w025.py \
	$(SM)_w050.py $(SM)_w075.py $(SM)_w100.py --names US-Net MutualNet \
	alone-w0.25 alone-w0.5 alone-w0.75 alone-w1.0 --baseline US-Net
STUDY_resizable := $(SR)_super.py $(SR)_alone_100-100-100-100.py \
	$(SR)_alone_100-075-100-100.py $(SR)_alone_075-100-100-100.py \
	$(SR)_alone_050-100-100-100.py --names super alone-1-1-1-1 \
	alone-1-.75-1-1 alone-.75-1-1-1 alone-.5-1-1-1 --baseline \
	alone-1-1-1-1 alone-1-.75-1-1 alone-.75-1-1-1 alone-.5-1-1-1

study-data: install
	[ -f $(MS_DATA)/annotations/instances_val2017.json ] || \
		$(PY) tools/make_coco_multiscale.py $(MS_DATA)

study: study-data
	$(if $(STUDY_$(STUDY)),,$(error STUDY=$(STUDY): allowed backbones, mutualnet, resizable))
	$(PY) tools/analysis/study.py $(STUDY_$(STUDY)) --seeds $(SEEDS) \
		--parallel $(PARALLEL) --work-dir work_dirs/study/$(STUDY) \
		$(STUDY_ARGS)
