# `make run`: set everything up and start the app (offline, CPU is fine).
# `make test`: set everything up (with the optional Ray extra, requirements-cluster.txt) and run the whole test suite.
# `make lock`: re-resolve requirements-lock.txt (every transitive version) from PyPI after editing requirements*.txt.
VENV ?= .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: setup run test bench load lint lock
setup:
	VENV=$(VENV) bash scripts/setup.sh
run: setup
	$(PY) app.py $(ARGS)
test:
	VENV=$(VENV) WITH_BROWSER=1 WITH_CLUSTER=1 bash scripts/setup.sh
	$(PY) -m pytest $(PYTEST_ARGS)
bench: setup
	$(PY) -m cnnviz bench
load: setup
	$(PY) benchmarks/load_test.py --epochs 15 --overload --out benchmarks/results/load_test.json
lint: setup
	$(PY) -m ruff check cnnviz tests benchmarks scripts app.py
# uv lives in its own venv, never in $(VENV); versions already in the lock are kept unless a requirement moved.
UV_VENV ?= /tmp/cnnviz-uv
lock:
	[ -x $(UV_VENV)/bin/uv ] || { python3 -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install -q uv; }
	$(UV_VENV)/bin/uv pip compile requirements.txt requirements-dev.txt requirements-cluster.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-config --custom-compile-command "make lock" -q -o requirements-lock.txt
