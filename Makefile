# keybroker: `make dev` runs everything locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= dev
PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
export PULUMI_BACKEND_URL

.PHONY: dev test lint fmt bench preview up destroy clean

# The venv is (re)installed whenever a pyproject.toml changes. pip prints what it fetches,
# so the first run (about a minute) shows its progress.
$(BIN)/.installed: pyproject.toml devtools/pyproject.toml
	@echo "== creating $(VENV) and installing keybroker, its doubles (devtools/) and test tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[test]' -e ./devtools \
	  | grep -E '^(Collecting|Successfully|ERROR)' || true
	@$(BIN)/python -c 'import broker, keybroker_dev, infra' \
	  || { echo "the install into $(VENV) failed: run 'make clean' and try again"; exit 1; }
	@touch $@

dev: $(BIN)/.installed
	$(BIN)/keybroker dev

test: $(BIN)/.installed
	$(BIN)/ruff check broker infra policies devtools tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check broker infra policies devtools tests bench
	$(BIN)/ruff format --check broker infra policies devtools tests bench

fmt: $(BIN)/.installed
	$(BIN)/ruff check --fix broker infra policies devtools tests bench
	$(BIN)/ruff format broker infra policies devtools tests bench

bench: $(BIN)/.installed
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Real deployments (Docker host + Pulumi CLI). preview and up run the policy pack first.
preview up destroy: $(BIN)/.installed
	@command -v pulumi >/dev/null || { echo "pulumi CLI not found: https://www.pulumi.com/docs/install/"; exit 2; }
	@mkdir -p .pulumi-state
	PATH=$(CURDIR)/$(BIN):$$PATH pulumi stack select --create $(STACK)
	PATH=$(CURDIR)/$(BIN):$$PATH pulumi $@ --stack $(STACK) \
	  $(if $(filter preview up,$@),--policy-pack policies/pack,) $(if $(filter up destroy,$@),--yes,)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .keybroker
