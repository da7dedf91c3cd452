# Monet submission pipeline. `make help` lists the targets.
# Every stage target takes CONFIG=<preset> and SET="section.key=value ...", e.g.
#   make train CONFIG=demo SET="train.epochs=2"

CONFIG ?= default
SET ?=
# a test worker per core and two more: while some tests wait on a notebook, a child or the fake Kaggle,
# the others use the cores
TEST_WORKERS ?= $(shell echo $$(( $$(getconf _NPROCESSORS_ONLN) + 2 )))
GPUS ?= 1
NODES ?= 1
NODE_RANK ?= 0
RDZV ?=
SESSIONS ?=
SUBMIT ?=
SWEEP ?=
SEARCH ?=
RUN ?=
DRY_RUN ?=
FORCE ?=
YES ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# A flag is on for 1, true or yes and off for 0, false, no or nothing (DRY_RUN=0 is off); anything else stops.
ON := 1 true yes TRUE YES True Yes
OFF := 0 false no FALSE NO False No
on = $(if $(filter $(ON),$($(1))),1,$(if $(filter-out $(OFF),$($(1))),$(error $(1)=$($(1)): use 1, true or yes (on), or 0, false, no or nothing (off))))
SETS := $(foreach s,$(SET),--set $(s))
ARGS = --config $(CONFIG) $(SETS) $(if $(call on,FORCE),--force) $(if $(call on,YES),--yes)
PIPELINE = $(PY) -m pipeline
# One machine: GPUS=N processes. Several: NODES=M machines, this one NODE_RANK=i, all meeting at RDZV=host:port
# (torchrun's c10d rendezvous); each machine needs the data at the same paths, rank 0 alone writes the run.
ifneq ($(NODES),1)
TRAIN_RUN = $(VENV)/bin/torchrun --nnodes=$(NODES) --node-rank=$(NODE_RANK) --nproc-per-node=$(GPUS) \
	--rdzv-backend=c10d --rdzv-endpoint=$(RDZV) --rdzv-id=monet-pipeline -m pipeline
else ifneq ($(GPUS),1)
TRAIN_RUN = $(VENV)/bin/torchrun --standalone --nproc_per_node=$(GPUS) -m pipeline
else
TRAIN_RUN = $(PIPELINE)
endif

.DEFAULT_GOAL := help
.PHONY: help setup demo download augment train generate score zip leaderboard check-page tensorboard kernel doctor push submit upload upload-weights train-kaggle sweep search search-dashboard test test-fast kaggle-python kaggle-check bench lint clean

help: ## list the targets
	@echo "Usage: make <target> [CONFIG=default|demo|kaggle] [SET=\"section.key=value ...\"]"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the pipeline with its dev tools (no-op when up to date)

demo: $(STAMP) ## run the whole pipeline on the built-in offline demo data (small models, CPU)
	$(MAKE) --no-print-directory download augment train generate CONFIG=demo SET='$(SET)'
	@$(PIPELINE) score --config demo $(SETS); rc=$$?; \
	  if [ $$rc -eq 3 ]; then echo "score: skipped (see the message above); the demo goes on"; \
	  elif [ $$rc -ne 0 ]; then exit $$rc; fi
	$(MAKE) --no-print-directory zip CONFIG=demo SET='$(SET)'

download: $(STAMP) ## fetch the competition data into data/raw (download.source=kaggle|demo|dir:PATH)
	$(PIPELINE) download $(ARGS)

augment: $(STAMP) ## 300 Monets -> 1,500 in data/augmented/monet, with a contact sheet
	$(PIPELINE) augment $(ARGS)

train: $(STAMP) ## train into data/runs/<run> (resumable; GPUS=N GPUs, NODES=M NODE_RANK=i RDZV=host:port machines)
	$(if $(filter-out 1,$(NODES)),$(if $(RDZV),,$(error NODES=$(NODES) needs RDZV=host:port, the rendezvous of node 0)))
	$(TRAIN_RUN) train $(ARGS)

generate: $(STAMP) ## write the Monet-style JPEGs into submissions/images
	$(PIPELINE) generate $(ARGS)

score: $(STAMP) ## local MiFID of submissions/images; appends to submissions/leaderboard.csv
	$(PIPELINE) score $(ARGS)

zip: $(STAMP) ## validate and write submissions/images.zip
	$(PIPELINE) zip $(ARGS)

leaderboard: $(STAMP) ## write submissions/leaderboard.html: one row per run, its scores and pictures
	$(PIPELINE) leaderboard $(ARGS)

check-page: $(STAMP) ## write the leaderboard page, then check in headless Chromium that every picture loads
	$(PIPELINE) leaderboard --check $(ARGS)

tensorboard: $(STAMP) ## serve every run's TensorBoard curves (data/runs) at http://localhost:6006
	@test -x $(VENV)/bin/tensorboard || { echo "make tensorboard: no tensorboard in $(VENV): $(VENV)/bin/pip install -e '.[tensorboard]'"; exit 1; }
	$(VENV)/bin/tensorboard --logdir data/runs

kernel: $(STAMP) ## build the Kaggle notebook kernel in kernels/<slug>
	$(PIPELINE) kernel $(ARGS)

doctor: $(STAMP) ## ask Kaggle (reading only): credentials, rules, submissions left, GPU quota, data, weights
	$(PIPELINE) doctor $(ARGS)

push: $(STAMP) ## build the kernel and push it to Kaggle
	$(PIPELINE) push $(ARGS)

submit: $(STAMP) ## push, wait, fetch, check, score, submit, wait for the public score (DRY_RUN=1: no submit; RUN=<name>: from an uploaded run)
	$(PIPELINE) submit $(ARGS) $(if $(call on,DRY_RUN),--set submit.dry_run=true) $(if $(RUN),--run $(RUN))

upload: $(STAMP) ## put the run RUN=<name> (data/runs/<name>: its checkpoint and config.toml) on Kaggle as a private dataset
	$(PIPELINE) upload $(ARGS) $(if $(RUN),--run $(RUN))

upload-weights: $(STAMP) ## put the FID weights on Kaggle once as a private dataset; kernels then attach it to score
	$(PIPELINE) upload --weights $(ARGS)

sweep: $(STAMP) ## run SWEEP=NAME|PATH (families, recipe, demo, or a file) side by side; SET=sweep.backend=local
	$(if $(SWEEP),,$(error SWEEP=NAME|PATH is needed: a ready sweep (families, recipe, demo) or a sweep file))
	$(PIPELINE) sweep $(SWEEP) $(ARGS)

search: $(STAMP) ## spend GPU-hours where they pay: SEARCH=NAME|PATH (demo, recipe, or a file); SUBMIT=1 submits the best
	$(if $(SEARCH),,$(error SEARCH=NAME|PATH is needed: a ready search (demo, recipe) or a search file))
	$(PIPELINE) search $(SEARCH) $(ARGS) $(if $(call on,SUBMIT),--submit)

search-dashboard: $(STAMP) ## open optuna-dashboard on SEARCH=NAME's journal (pip install -e '.[dashboard]')
	$(if $(SEARCH),,$(error SEARCH=NAME is needed: the search whose journal to open))
	@test -x $(VENV)/bin/optuna-dashboard || { echo "make search-dashboard: no optuna-dashboard in $(VENV): $(VENV)/bin/pip install -e '.[dashboard]'"; exit 1; }
	$(VENV)/bin/optuna-dashboard "$$($(PIPELINE) search $(SEARCH) $(ARGS) --journal)"

train-kaggle: $(STAMP) ## train one run over SESSIONS=N Kaggle sessions; SUBMIT=1 then submits from its last checkpoint
	$(PIPELINE) train-kaggle $(ARGS) $(if $(SESSIONS),--set train.sessions=$(SESSIONS)) $(if $(call on,SUBMIT),--submit) \
	  $(if $(call on,DRY_RUN),--set submit.dry_run=true)

test: $(STAMP) kaggle-python ## run the test suite on a worker per CPU core and two more (TEST_WORKERS=N to choose)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load

test-fast: $(STAMP) ## the suite without the tests marked slow (notebook runs, kills, several processes)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load -m "not slow"

kaggle-python: $(STAMP) ## build (once) the Python like Kaggle's image that the notebook tests run in: .venv-kaggle
	@$(PY) tests/kaggle_image.py >/dev/null

kaggle-check: $(STAMP) ## test the notebook in a Python like Kaggle's image (builds .venv-kaggle once)
	$(PY) -m pytest tests/test_kaggle_image.py tests/test_preflight.py tests/test_kernel.py tests/test_submit.py

bench: $(STAMP) ## run the benchmarks (ONLY=train,generate,score,demo DATA=DIR FULL=1); writes submissions/bench/
	$(if $(filter command line,$(origin ARGS)),$(error make bench: ARGS= would replace CONFIG=, SET= and YES=; use ONLY=parts, DATA=DIR and FULL=1))
	$(PIPELINE) bench $(ARGS) $(if $(ONLY),--only $(ONLY)) $(if $(DATA),--data $(DATA)) $(if $(call on,FULL),--full)

lint: $(STAMP) ## ruff, then import-linter: the layers and the families' independence (pyproject.toml)
	$(VENV)/bin/ruff check pipeline tests
	$(VENV)/bin/lint-imports --no-logo

clean: ## remove generated data, runs, submissions and built kernels (keeps .venv)
	find data submissions -mindepth 1 -maxdepth 1 ! -name README.md ! -name .gitignore -exec rm -rf {} +
	find kernels -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} + 2>/dev/null || true
