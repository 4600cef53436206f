# Two commands on a fresh machine: `make demo` (the default study) and `make test` (the default test suite).
# Both create .venv and install what they need; torch is pinned to the local CPU wheel and installed first so
# that nothing pulls a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
PIP    := $(PY) -m pip install -q --disable-pip-version-check

# The reference studies of docs/studies/ (issue #7) and the other built-in comparisons; `make studies` runs them all.
STUDIES ?= grokking induction-heads arithmetic-mirage multiplication-mirage scaling-law icl-emergence adaptation transformer-vs-lstm

.PHONY: setup setup-dev demo test test-slow lint bench studies clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[hf]'
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) -e '.[dev,hf,lmeval,ray,tracking]'
	touch $@

setup: $(VENV)/.core
setup-dev: $(VENV)/.dev

demo: setup            ## run the default study end to end and print where the report is
	$(VENV)/bin/emergence run

test: setup-dev        ## the default test suite (slow scientific checks excluded)
	$(PY) -m pytest -q

test-slow: setup-dev   ## slow scientific checks (reference studies' quick variants)
	$(PY) -m pytest -q -m slow

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup-dev       ## benchmarks against peers measured in the same run
	$(PY) bench/train_throughput.py
	$(PY) bench/fused_gelu.py
	$(PY) bench/eval_throughput.py

studies: setup        ## run the full reference studies into runs/<name>/ (each writes report.html)
	@for s in $(STUDIES); do \
		echo "== emergence run $$s"; \
		$(VENV)/bin/emergence run $$s --out runs/$$s || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
