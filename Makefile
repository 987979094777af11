# dojobber: make demo (run the main example), make test (the whole suite).
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast test-vm pytest lint typecheck bench docs-graph system-deps clean test-upstream

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The project itself with the extras the demo shows (graph pictures).
$(VENV)/.demo-installed: pyproject.toml setup.cfg | $(PY)
	$(PIP) install -e ".[graph]"
	touch $@

# Everything the tests need: all extras, test tools, and Debian packages.
$(VENV)/.test-installed: pyproject.toml setup.cfg scripts/system-deps.sh scripts/apt-install.sh | $(PY)
	sh scripts/system-deps.sh
	$(PIP) install -e ".[all,test]"
	touch $@ $(VENV)/.demo-installed

system-deps:
	sh scripts/system-deps.sh

demo: $(VENV)/.demo-installed
	$(PY) examples/website.py

# The picture README.rst shows: the demo's graph after its failing run.
docs-graph: $(VENV)/.demo-installed
	$(PY) examples/website.py --graphs $(VENV)/docs-graph >/dev/null
	mkdir -p docs
	cp $(VENV)/docs-graph/website-failing-run.png docs/website-graph.png
	@echo "wrote docs/website-graph.png"

# --no-skips: everything the tests need is installed above, so a skipped
# test means a missing part; it fails the run instead of passing quietly.
# -n: the tests spend most of their time waiting on real servers and child
# processes, so one pytest-xdist worker per core (at most 4) halves the wall
# time on 2 cores.  `make pytest ARGS=...` runs them in one process.
test: $(VENV)/.test-installed
	$(PY) -m pytest -q --no-skips -n auto --maxprocesses 4
	$(PY) -m ruff check dojobber tests examples benchmarks
	$(PY) -m mypy

# A real guest under qemu:///system (TCG here): builds a small Debian image
# once per recipe, serves it from the fake OBS, runs examples/vm_from_obs.py
# twice and each key method, then removes the domain.  Root; minutes.
test-vm: $(VENV)/.test-installed
	sh scripts/vm-deps.sh
	$(PY) -m pytest -q -s -o timeout=3600 tests/vm/check_real_guest.py

pytest: $(VENV)/.test-installed
	$(PY) -m pytest -q $(ARGS)

# The tests without the slow marker (a quick loop while editing).
test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -q -m "not slow" $(ARGS)

lint: $(VENV)/.test-installed
	$(PY) -m ruff check dojobber tests examples benchmarks

typecheck: $(VENV)/.test-installed
	$(PY) -m mypy

# Side-by-side engine benchmark against upstream DoJobber 0.6.3 (own venv).
UPSTREAM_VENV ?= .venv-upstream
$(UPSTREAM_VENV)/.installed:
	$(PYTHON) -m venv $(UPSTREAM_VENV)
	$(UPSTREAM_VENV)/bin/pip --disable-pip-version-check -q install "setuptools<82" wheel
	$(UPSTREAM_VENV)/bin/pip --disable-pip-version-check -q install --no-build-isolation \
	    dojobber==0.6.3 python-graph-core python-graph-dot
	touch $@

# Upstream's own test suite (in its repository; the 0.6.3 sdist ships no
# tests) run against this package.  Needs git and network to GitHub, so it is
# not part of `make test`; tests/test_upstream_compat.py covers the same ground.
UPSTREAM_TESTS ?= $(VENV)/upstream-tests
test-upstream: $(VENV)/.test-installed
	test -d $(UPSTREAM_TESTS) || git clone -q --depth 1 https://github.com/ExtraHop/DoJobber $(UPSTREAM_TESTS)
	cd $(UPSTREAM_TESTS)/tests && $(abspath $(PY)) -m pytest -q -p no:cacheprovider test_dojobber.py

bench: $(VENV)/.test-installed $(UPSTREAM_VENV)/.installed
	$(PY) benchmarks/bench_engine.py --upstream-python $(UPSTREAM_VENV)/bin/python --upstream-repeat 5 \
	    --write benchmarks/README.md

clean:
	rm -rf $(VENV) $(UPSTREAM_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
