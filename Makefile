# Monet submission pipeline. `make help` lists the targets.
# Every stage target takes CONFIG=<preset> and SET="section.key=value ...", e.g.
#   make train CONFIG=demo SET="train.epochs=2"

CONFIG ?= default
SET ?=
GPUS ?= 1
DRY_RUN ?=
FORCE ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

SETS := $(foreach s,$(SET),--set $(s))
ARGS = --config $(CONFIG) $(SETS) $(if $(FORCE),--force)
RUN = $(PY) -m pipeline
ifneq ($(GPUS),1)
TRAIN_RUN = $(VENV)/bin/torchrun --standalone --nproc_per_node=$(GPUS) -m pipeline
else
TRAIN_RUN = $(RUN)
endif

.DEFAULT_GOAL := help
.PHONY: help setup demo download augment train generate score zip leaderboard check-page kernel push submit test kaggle-check bench lint clean

help: ## list the targets
	@echo "Usage: make <target> [CONFIG=default|demo|kaggle] [SET=\"section.key=value ...\"]"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the pipeline with its dev tools (no-op when up to date)

demo: $(STAMP) ## run the whole pipeline on the built-in offline demo data (small models, CPU)
	$(MAKE) --no-print-directory download augment train generate CONFIG=demo SET='$(SET)'
	@$(RUN) score --config demo $(SETS); rc=$$?; \
	  if [ $$rc -eq 3 ]; then echo "score: skipped (see the message above); the demo goes on"; \
	  elif [ $$rc -ne 0 ]; then exit $$rc; fi
	$(MAKE) --no-print-directory zip CONFIG=demo SET='$(SET)'

download: $(STAMP) ## fetch the competition data into data/raw (download.source=kaggle|demo|dir:PATH)
	$(RUN) download $(ARGS)

augment: $(STAMP) ## 300 Monets -> 1,500 in data/augmented/monet, with a contact sheet
	$(RUN) augment $(ARGS)

train: $(STAMP) ## train the model into data/runs/<run> (GPUS=N for multi-GPU, resumable)
	$(TRAIN_RUN) train $(ARGS)

generate: $(STAMP) ## write the Monet-style JPEGs into submissions/images
	$(RUN) generate $(ARGS)

score: $(STAMP) ## local MiFID of submissions/images; appends to submissions/leaderboard.csv
	$(RUN) score $(ARGS)

zip: $(STAMP) ## validate and write submissions/images.zip
	$(RUN) zip $(ARGS)

leaderboard: $(STAMP) ## write submissions/leaderboard.html: one row per run, its scores and pictures
	$(RUN) leaderboard $(ARGS)

check-page: $(STAMP) ## write the leaderboard page, then check in headless Chromium that every picture loads
	$(RUN) leaderboard --check $(ARGS)

kernel: $(STAMP) ## build the Kaggle notebook kernel in kernels/<slug>
	$(RUN) kernel $(ARGS)

push: $(STAMP) ## build the kernel and push it to Kaggle
	$(RUN) push $(ARGS)

submit: $(STAMP) ## push, wait, fetch, check, score, submit, wait for the public score (DRY_RUN=1: no submit)
	$(RUN) submit $(ARGS) $(if $(DRY_RUN),--set submit.dry_run=true)

test: $(STAMP) ## run the test suite
	$(PY) -m pytest

kaggle-check: $(STAMP) ## test the notebook in a Python like Kaggle's image (builds .venv-kaggle once)
	$(PY) -m pytest tests/test_kaggle_image.py tests/test_preflight.py tests/test_kernel.py tests/test_submit.py

bench: $(STAMP) ## run the benchmarks; writes submissions/bench/bench.md and .json
	$(PY) -m pipeline.bench $(ARGS)

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check pipeline tests

clean: ## remove generated data, runs, submissions and built kernels (keeps .venv)
	find data submissions -mindepth 1 -maxdepth 1 ! -name README.md ! -name .gitignore -exec rm -rf {} +
	find kernels -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} + 2>/dev/null || true
