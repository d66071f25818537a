# ResNet Explorer: `make run` starts the app, `make test` runs every check.
# Both create .venv on first use; stamp files make re-runs skip the install.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= localhost
PORT   ?= 8501
PYTEST_ARGS ?=

.PHONY: run test lint format bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -qq -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install -qq -r requirements-dev.txt
	touch $@

# Classroom server: make run HOST=0.0.0.0 PORT=8501
run: $(VENV)/.runtime
	$(BIN)/python -m streamlit run app/streamlit_app.py \
		--server.address $(HOST) --server.port $(PORT)

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Refresh the README's screenshots (the browser test, saving into assets/)
screenshots: $(VENV)/.dev
	RESNET_EXPLORER_SHOTS=assets $(BIN)/python -m pytest tests/e2e -q

bench: $(VENV)/.dev
	for f in bench/[!_]*.py; do \
		case $$f in *gpu_check.py) continue;; esac; \
		echo "== $$f"; $(BIN)/python $$f || exit 1; \
	done
	if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		echo "== bench/gpu_check.py"; $(BIN)/python bench/gpu_check.py; \
	else echo "== bench/gpu_check.py: no CUDA device here, skipped (run it on a GPU)"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
