# mmbalance developer entry points. Each target creates .venv when missing and installs
# the pinned dependencies (constraints.txt) first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mmbalance-installed
DEMO_OUT ?= mmbalance-demo

.PHONY: install test lint demo bench bench-data clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check mmbalance tests bench scripts
	$(BIN)/mypy mmbalance

demo: $(STAMP)
	$(BIN)/mmbalance demo --out $(DEMO_OUT)

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

bench-data: $(STAMP)
	$(BIN)/python bench/realistic_av.py --out data/letters-av
	$(BIN)/python bench/emotion_av.py --out data/emotion-av

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
