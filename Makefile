# msdet: `make demo` trains + evaluates the main path on the embedded dataset,
# `make test` runs the test suite. Both install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CFG := configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py
DEMO_DIR := work_dirs/demo

.PHONY: install demo test

install:
	VENV=$(VENV) bash tools/install.sh

demo: install
	$(PY) tools/make_coco_demo.py data/coco_demo
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CFG) $$(cat $(DEMO_DIR)/last_checkpoint) \
		--work-dir $(DEMO_DIR)
	$(PY) tools/analysis/scale_benchmark.py $(DEMO_CFG) \
		$$(cat $(DEMO_DIR)/last_checkpoint) --scales 128 192 256 320 \
		--work-dir $(DEMO_DIR)/scale

test: install
	$(PY) -m pytest tests -q
