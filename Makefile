# `make run`: set everything up and start the app (offline, CPU is fine).
# `make test`: set everything up and run the whole test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: setup run test bench load lint
setup:
	VENV=$(VENV) bash scripts/setup.sh
run: setup
	$(PY) app.py $(ARGS)
test:
	VENV=$(VENV) WITH_BROWSER=1 bash scripts/setup.sh
	$(PY) -m pytest $(PYTEST_ARGS)
bench: setup
	$(PY) -m cnnviz bench
load: setup
	$(PY) benchmarks/load_test.py --epochs 15 --overload --out benchmarks/results/load_test.json
lint: setup
	$(PY) -m ruff check cnnviz tests benchmarks scripts app.py
