# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-browser lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

# The founding study on the built-in synthetic data: U-Net VGG19 vs MobileNetV2, 200 steps of
# training each (the same study on a slow or busy machine, only later), then
# runs/demo/report.html. The demo's folder is its own: each run replaces it (seglab itself never
# replaces an earlier run or report).
demo: $(VENV)/.installed
	rm -rf runs/demo
	$(BIN)/seglab compare --encoders vgg19,mobilenet_v2 --weights none --out runs/demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=20

# The page of `seglab serve` in headless Chromium (Playwright from the test extras drives the
# system's browser; none is downloaded). Installs Chromium with apt when it is missing and this
# runs as root; the test fails rather than skips here when no browser can be had.
test-browser: $(VENV)/.installed-test
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		command -v google-chrome >/dev/null || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		{ echo "test-browser: install Chromium (apt-get install chromium) and rerun"; exit 1; }
	SEGLAB_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -rs tests/serving/test_page_browser.py

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
