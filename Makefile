# The two commands of the README: `make roadmap` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist
RUNS ?= runs
ROADMAP ?= convnext_t
SEEDS ?= 1
# make roadmap's seeds, 0..SEEDS-1; SEEDS that is not a positive integer stops make in one line before anything runs
SEED_DIGITLESS = $(subst 0,,$(subst 1,,$(subst 2,,$(subst 3,,$(subst 4,,$(subst 5,,$(subst 6,,$(subst 7,,$(subst 8,,$(subst 9,,$(SEEDS)))))))))))
SEED_LIST := $(if $(filter roadmap,$(MAKECMDGOALS)),$(if $(or $(filter-out 1,$(words $(SEEDS))),$(filter 0%,$(SEEDS)),$(SEED_DIGITLESS)),\
  $(error SEEDS='$(SEEDS)': must be a positive integer (make roadmap trains seeds 0 to SEEDS-1)),$(shell seq -s, 0 $$(($(SEEDS) - 1)))))
# runs side by side: auto = one per GPU where torch sees GPUs (each run takes one of its own), else one per core;
# N; or 1 (one after the other). Through Ray where it is installed, else joblib (python -m roadmap.train.launch).
JOBS ?= auto
# a folder of your own steps and roadmaps (python run.py --config-dir), e.g. make roadmap ROADMAP=mine CONFIG_DIR=my_conf
CONFIG_DIR ?=
export WANDB_MODE ?= disabled

.PHONY: setup data roadmap figure test docs bench gpu-check gpu-roadmap gpu-kit

setup: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST from Debian's package when we can install it; otherwise torchvision downloads it on first use.
data:
	@if [ ! -d $(FMNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null || \
	  echo "note: could not install dataset-fashion-mnist; torchvision will download Fashion-MNIST"; fi

REPORT := $(RUNS)/embedded/$(ROADMAP)/report
# the benchmark whose img/s of the published networks join the report's accuracy-against-speed figure, if there is one
BENCH ?= $(wildcard benchmarks/bench_cpu_$(ROADMAP).csv)
REPORT_ARGS = --out $(REPORT) $(if $(BENCH),--bench $(BENCH))

# A whole roadmap on the embedded scale (seeds 0..SEEDS-1, JOBS runs at once; finished runs are skipped), then its
# tables and figures.
roadmap: setup data
	@launch=$$($(PY) -m roadmap.train.launch $(JOBS)) && start=$$(date +%s) && \
	  $(PY) run.py $(if $(CONFIG_DIR),--config-dir $(CONFIG_DIR)) -m +sweep=roadmap roadmap=$(ROADMAP) seed=$(SEED_LIST) runs_root=$(RUNS) $$launch && \
	  echo "sweep wall time: $$(( $$(date +%s) - start )) s"
	$(PY) -m roadmap.report $(RUNS)/embedded/$(ROADMAP) $(REPORT_ARGS)

# Regenerate the README's figures and tables (docs/) from the runs of `make roadmap` (and of explorations, if any).
figure: setup
	$(PY) -m roadmap.report $(RUNS)/embedded/$(ROADMAP) $(REPORT_ARGS)
	mkdir -p docs && for f in roadmap.png transfer.png speed.png robustness.png results.md agreement.json explore.png; do \
	  if [ -f $(REPORT)/$$f ]; then cp $(REPORT)/$$f docs/$(if $(filter convnext_t,$(ROADMAP)),,$(ROADMAP)_)$$f; fi; done

# The tests in parallel, one worker per core (pytest-xdist; an idle worker takes queued tests from a busy one, so a
# slow test near the end does not leave the other core idle); `$(PY) -m pytest -q` runs them in one process.
test: setup data
	$(PY) -m pytest -q -n auto --dist worksteal

# The docs as a site (Sphinx + MyST: the README, the guides, results, benchmarks and the API from docstrings) in
# docs/_build/html; strict: a warning, a broken link or #anchor fails it (tests/test_docs.py builds it too).
docs: setup
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

bench: setup
	$(PY) -m roadmap.bench

# The GPU path. A GPU node is often offline and has torch and the scientific stack already: `make gpu-kit` (here,
# where pip reaches PyPI) writes KIT (default gpu-kit/, under 40 MB): the wheels of exactly the packages such a node
# lacks (a PyTorch container's by default; HAVE=<file with `pip freeze` of the node> for another) and Fashion-MNIST.
# Copy it over; `make gpu-check KIT=gpu-kit` / `make gpu-roadmap KIT=gpu-kit` install it into KIT/site without an
# index and without touching torch (nothing is resolved), and read the data from it. Both stop at once with one line
# without a GPU; REHEARSE=1 runs every stage on the CPU instead, tiny (about a minute each), never into docs/.
GPU_START := $(shell date +%s)
GPU_PY ?= $(shell test -x $(PY) && echo $(PY) || echo $(PYTHON))
KIT ?=
REHEARSE ?=
HAS_GPU = $(shell $(GPU_PY) -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null | grep 1)
NEEDS_GPU = $(if $(REHEARSE),,$(if $(HAS_GPU),,$(error make $@ needs a CUDA GPU, and $(GPU_PY) sees none (or has no torch); REHEARSE=1 rehearses it on the CPU)))
GPU_RUN = $(if $(KIT),$(GPU_PY) -m roadmap.gpu.kit install $(KIT) && PYTHONPATH=$(abspath $(KIT))/site$${PYTHONPATH:+:$$PYTHONPATH}) \
  $(GPU_PY) -m
GPU_ARGS = $(if $(REHEARSE),--rehearse) $(if $(KIT),--data-root $(KIT)/fashion_mnist)

# The GPU path in one command (about 8 minutes on one GPU): every GPU test, a training at full width, the GPU
# roadmap's calibration, the benchmark, loader benchmark, speed variants and profile; results in $(GPU_OUT).
GPU_OUT ?= $(if $(REHEARSE),$(RUNS)/gpu-check-rehearsal,benchmarks/gpu)
gpu-check:
	$(NEEDS_GPU)
	@$(GPU_RUN) roadmap.gpu.check --out $(GPU_OUT) $(GPU_ARGS) $(GPU_CHECK_ARGS)

# The whole roadmap on one GPU within GPU_BUDGET seconds from the start of make (default 480: 8 minutes, 90 with
# REHEARSE; the kit's install, calibration and report included), SEEDS seeds (default 2), on DATA (default
# fashion_mnist, what an offline node can have) at the cifar scale for as many epochs as fit (EPOCHS=N to choose; a rerun keeps the first run's);
# runs in runs/gpu, report in docs/gpu (REHEARSE=1: runs/gpu-rehearsal and its report/).
# `make gpu-roadmap DATA=cifar100 EPOCHS=100 SEEDS=3 GPU_BUDGET=36000` is the full cifar-scale roadmap.
GPU_BUDGET ?= $(if $(REHEARSE),90,480)
GPU_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),2)
gpu-roadmap:
	$(NEEDS_GPU)
	@$(GPU_RUN) roadmap.gpu.roadmap --started $(GPU_START) --budget $(GPU_BUDGET) --seeds $(GPU_SEEDS) \
	  --data $(or $(DATA),fashion_mnist) --roadmap $(ROADMAP) $(GPU_ARGS) \
	  $(if $(REHEARSE),--runs $(RUNS)/gpu-rehearsal,--runs $(RUNS)/gpu --out docs/gpu) $(if $(EPOCHS),--epochs $(EPOCHS))

# The offline kit of a GPU node (see above): KIT=<folder> (default gpu-kit), HAVE=<pip freeze of the node>.
gpu-kit: setup data
	$(PY) -m roadmap.gpu.kit build --out $(or $(KIT),gpu-kit) $(if $(HAVE),--have $(HAVE))
