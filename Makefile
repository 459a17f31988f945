# Headwater: `make demo` runs the quickstart, `make test` runs the suite. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HW := $(VENV)/bin/headwater
DEMO_DIR ?= .demo
ROWS ?= 10000000

.PHONY: install demo test lint format bench bench-quality clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	@cp -r examples/quickstart/headwater.yaml examples/quickstart/pipelines examples/quickstart/data $(DEMO_DIR)/
	@cd $(DEMO_DIR) && ../$(HW) init . >/dev/null
	cd $(DEMO_DIR) && ../$(HW) run pipelines/quickstart.yaml
	cd $(DEMO_DIR) && ../$(HW) quarantine
	cd $(DEMO_DIR) && ../$(HW) query "select currency, count(*) as orders, sum(amount) as amount, count(distinct country) as countries from mart.orders group by currency order by orders desc limit 5"

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check src tests bench examples docs/examples
	$(VENV)/bin/ruff format --check src tests bench examples docs/examples
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests bench examples docs/examples
	$(VENV)/bin/ruff check --fix src tests bench examples docs/examples

bench: install
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[bench]'
	$(PY) bench/file_ingest.py --rows $(ROWS) --json bench/file_ingest.json

bench/.venv-quality/bin/python: bench/requirements-quality.txt
	python3 -m venv bench/.venv-quality
	bench/.venv-quality/bin/pip install -q --disable-pip-version-check -r bench/requirements-quality.txt
	touch $@

bench-quality: install bench/.venv-quality/bin/python
	$(PY) bench/quality.py --rows $(ROWS) --repeat 3 --json bench/quality.json

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
