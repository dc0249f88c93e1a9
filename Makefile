# docalign: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-packages
EXP ?= demo
ARGS ?=
EXPERIMENTS := $(sort $(basename $(notdir $(filter-out experiments/_%,$(wildcard experiments/*.yaml)))))

.PHONY: help system-packages install train print-config test test-slow hub-replica rehearse lint format tb compare clean check-exp

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  experiments: $(EXPERIMENTS)"

# System packages first (tesseract-ocr; python3-venv where venv needs it): installed with apt-get as root or with
# passwordless sudo, else make stops with the command to run (scripts/system-packages.sh). Order-only, so that an
# existing .venv is not reinstalled; the check reruns when the script changes or $(SYSTEM_STAMP) is removed.
$(SYSTEM_STAMP): scripts/system-packages.sh
	@PYTHON=$(PYTHON) bash scripts/system-packages.sh
	@mkdir -p $(VENV) && touch $@

system-packages: $(SYSTEM_STAMP) ## Install (or name) the system packages docalign needs (first use only)

$(STAMP): setup.cfg pyproject.toml | $(SYSTEM_STAMP)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[ocr,hub,plot,test]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install docalign with all extras (first use only)

check-exp:
	@if [ ! -f experiments/$(EXP).yaml ] || [[ "$(EXP)" == _* ]]; then \
	  echo "make: unknown experiment EXP=$(EXP). Experiments are the files in experiments/ (without .yaml):"; \
	  echo "  $(EXPERIMENTS)"; \
	  echo "Run e.g. 'make train EXP=demo'."; exit 2; fi

train: check-exp $(STAMP) ## Train and test EXP (default demo): make train EXP=demo ARGS="--trainer.max_epochs 1"
	$(BIN)/docalign fit --config experiments/_base.yaml --config experiments/$(EXP).yaml $(ARGS)

print-config: check-exp $(STAMP) ## Print the resolved config of EXP (with ARGS)
	@$(BIN)/docalign fit --config experiments/_base.yaml --config experiments/$(EXP).yaml $(ARGS) --print_config

test: $(STAMP) ## Run the test suite (offline; the slow rehearsals are left to `make test-slow`)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP) ## Run only the slow rehearsals (tests marked slow: minutes each, still offline)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m slow $(ARGS)

hub-replica: $(STAMP) ## Build (or complete) the local hub replica in logs/hub-replica (use: HF_HOME=logs/hub-replica)
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/hub_replica.py --out logs/hub-replica

rehearse: $(STAMP) ## Fit + test every hub experiment at real size through the replica, no overlay (slow; make hub-replica first)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/pytest -q -m slow tests/test_hub_replica.py $(ARGS)

lint: $(STAMP) ## Lint and format check (ruff, configured in pyproject.toml); `make format` rewrites
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

compare: $(STAMP) ## Compare experiments' runs: make compare EXP="demo demo_aet" -> logs/compare.md, logs/compare.png
	$(BIN)/docalign compare $(EXP) $(ARGS)

tb: $(STAMP) ## TensorBoard on logs/ (compare runs side by side)
	$(BIN)/tensorboard --logdir logs

clean: ## Remove logs/ and caches (keeps .venv)
	rm -rf logs .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
