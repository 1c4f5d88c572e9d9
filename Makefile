# The two commands of the README: `make roadmap` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist
RUNS ?= runs
ROADMAP ?= convnext_t
SEEDS ?= 1
SEED_LIST := $(shell seq -s, 0 $$(($(SEEDS) - 1)))
export WANDB_MODE ?= disabled

.PHONY: setup data roadmap figure test bench clean

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

# A whole roadmap on the embedded scale (seeds 0..SEEDS-1; finished runs are skipped), then its tables and figures.
roadmap: setup data
	@start=$$(date +%s); $(PY) run.py -m +sweep=roadmap roadmap=$(ROADMAP) seed=$(SEED_LIST) runs_root=$(RUNS) && \
	  echo "sweep wall time: $$(( $$(date +%s) - start )) s"
	$(PY) -m roadmap.report $(RUNS)/embedded/$(ROADMAP) --out $(REPORT)

# Regenerate the README's figures and tables (docs/) from the runs of `make roadmap`.
figure: setup
	$(PY) -m roadmap.report $(RUNS)/embedded/$(ROADMAP) --out $(REPORT)
	mkdir -p docs && for f in roadmap.png transfer.png results.md agreement.json; do \
	  cp $(REPORT)/$$f docs/$(if $(filter convnext_t,$(ROADMAP)),,$(ROADMAP)_)$$f; done

test: setup data
	$(PY) -m pytest -q

bench: setup
	$(PY) -m roadmap.bench

clean:
	rm -rf $(VENV) build *.egg-info
