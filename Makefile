# Two commands on a fresh machine: `make demo` (main job) and `make test` (test suite).
# Both create .venv on first use; CPU-only torch 2.13.0 is installed first so pip never pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-other-cpu lint bench ui ui-screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ui]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python benchmarks/inversion_speed.py --out results/demo

test: $(STAMP) lint
	$(BIN)/pytest -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# the tests that read shipped or stored numbers, with the CPU kernels held to AVX2 and then to the generic ones:
# on this CPU that reproduces another CPU's rounding (it catches a test that compares two machines' floats)
test-other-cpu: $(STAMP)
	DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/pytest -q -m stored_data
	ATEN_CPU_CAPABILITY=default $(BIN)/pytest -q -m stored_data

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# the web app on the built-in model: http://127.0.0.1:7860
ui: $(STAMP)
	$(BIN)/diffinv ui

# refresh docs/images/ui/ from the browser tests (needs chromium)
ui-screenshots: $(STAMP)
	DIFFINV_UI_SCREENSHOTS=docs/images/ui DIFFINV_UI_MODEL=mini DIFFINV_UI_STEPS=0 $(BIN)/pytest -q tests/ui/test_browser.py

bench: $(STAMP)
	$(BIN)/python benchmarks/inversion_speed.py --out results/bench

clean:
	rm -rf $(VENV) results
