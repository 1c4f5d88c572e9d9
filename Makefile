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
# N; or 1 (one after the other). Through Ray where it is installed, else joblib (python -m roadmap.launch).
JOBS ?= auto
export WANDB_MODE ?= disabled

.PHONY: setup data roadmap figure test bench gpu-check gpu-roadmap wheels clean

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
	@launch=$$($(PY) -m roadmap.launch $(JOBS)) && start=$$(date +%s) && \
	  $(PY) run.py -m +sweep=roadmap roadmap=$(ROADMAP) seed=$(SEED_LIST) runs_root=$(RUNS) $$launch && \
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

bench: setup
	$(PY) -m roadmap.bench

# The GPU path in one command (about 8 minutes on one GPU): GPU tests, benchmark, loader benchmark, a short training
# at full width; results in $(GPU_OUT). Uses the python that has torch (.venv if present); on an offline GPU node,
# WHEELS=<folder made by `make wheels`> installs the other dependencies from it first. Stops at once without a GPU.
GPU_PY ?= $(shell test -x $(PY) && echo $(PY) || echo $(PYTHON))
GPU_OUT ?= benchmarks/gpu
WHEELS ?=
HAS_GPU = $(shell $(GPU_PY) -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null | grep 1)
NEEDS_GPU = $(if $(HAS_GPU),,$(error make $@ needs a CUDA GPU, and $(GPU_PY) sees none (or has no torch)))
GPU_SETUP = if [ -n "$(WHEELS)" ]; then $(GPU_PY) -m pip install -q --no-index --find-links $(WHEELS) -e . pytest; fi
gpu-check:
	$(NEEDS_GPU)
	@$(GPU_SETUP)
	$(GPU_PY) -m roadmap.gpu_check --out $(GPU_OUT) $(GPU_CHECK_ARGS)

# The whole roadmap on one GPU within GPU_BUDGET seconds from the start (default 480: 8 minutes, calibration
# included), SEEDS seeds (default 2), on DATA (default fashion_mnist, what an offline node can have) at the cifar
# scale for as many epochs as fit (EPOCHS=N to choose); runs in runs/gpu, report in docs/gpu.
# `make gpu-roadmap DATA=cifar100 EPOCHS=100 SEEDS=3 GPU_BUDGET=36000` is the full cifar-scale roadmap.
GPU_BUDGET ?= 480
GPU_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),2)
gpu-roadmap:
	$(NEEDS_GPU)
	@$(GPU_SETUP)
	$(GPU_PY) -m roadmap.gpu_roadmap --budget $(GPU_BUDGET) --seeds $(GPU_SEEDS) --data $(or $(DATA),fashion_mnist) \
	  --roadmap $(ROADMAP) --runs $(RUNS)/gpu --out docs/gpu $(if $(EPOCHS),--epochs $(EPOCHS))

# Everything but torch and torchvision that `make gpu-check` installs, as wheels for an offline GPU node with
# python $(WHEEL_PYTHON) on $(WHEEL_PLATFORM) (run where pip reaches PyPI; copy the folder over; WHEELS=<folder>).
WHEEL_PYTHON ?= 3.12
WHEEL_PLATFORM ?= --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
WHEEL_DIR = $(or $(WHEELS),wheels)
PIP_DOWNLOAD = $(PYTHON) -m pip download -q -d $(WHEEL_DIR) --find-links $(WHEEL_DIR) --only-binary=:all: \
  --python-version $(WHEEL_PYTHON) --implementation cp $(WHEEL_PLATFORM)
wheels:
	mkdir -p $(WHEEL_DIR)
	$(PYTHON) -m pip wheel -q --no-deps -w $(WHEEL_DIR) antlr4-python3-runtime==4.9.3  # omegaconf's; source only on PyPI, pure Python
	$(PIP_DOWNLOAD) --no-deps timm  # its other dependency is torch, which the node has
	$(PIP_DOWNLOAD) setuptools wheel huggingface_hub safetensors $$($(PYTHON) -c "import tomllib; \
	  p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(' '.join(d for d in p['dependencies'] + \
	  p['optional-dependencies']['test'] if not d.startswith(('torch', 'torchvision', 'timm'))))")
