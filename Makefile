# medmo: `make demo` runs the whole pipeline on CPU with the tiny model; `make test` runs the tests.
# Both set up .venv on their own (idempotent: re-running installs nothing new).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medmo-installed
# torch comes first and pinned, from this machine's disk, so no resolver pulls another build.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-slow test-all venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH) 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1'), torch.__version__"
	$(BIN)/pip install -q --disable-pip-version-check -e '.[train,eval,serve,dev]' $(TORCH) 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import medmo, transformers, trl, fastapi"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medmo demo

# lint-imports first: the layers in pyproject.toml ([tool.importlinter]) fail fast, before the tests.
test: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

clean:
	rm -rf $(VENV) runs
