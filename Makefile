# `make run` and `make test` do all set-up: a .venv with the pinned CPU torch and the project.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch 2.13.0 lies on this machine's disk; a looser pin downloads a CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: install browser postgres run demo test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/lorascope ui --host 127.0.0.1 --port 7860

demo: $(STAMP)
	$(VENV)/bin/lorascope sweep --task synthetic-facts --ranks 4,16,64,256 --rules standard,rslora \
		--alphas 16 --lrs 1e-3 --steps 300 --study demo-synthetic-facts

# Debian's chromium and chromedriver for the browser test (no browser download of any other kind)
browser:
	bash scripts/install_browser.sh

# Debian's postgresql server for the storage tests (the suite starts its own throwaway server)
postgres:
	bash scripts/install_postgres.sh

test: $(STAMP) browser postgres
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/lorascope bench --json runs/bench.json

clean:
	rm -rf $(VENV) runs .pytest_cache
