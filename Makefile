# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch==2.13.0 is installed before anything else: these machines serve a CPU build of that
# release, and any package that pulled torch in first would drag a multi-GB CUDA build.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-installed

.PHONY: demo test lint format bench setup system-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests use: Chromium for browser tests of the interactive page (driven
# by playwright with executable_path=/usr/bin/chromium; never `playwright install`), and the
# King James + Reina-Valera 1909 Bibles (SWORD modules) for the translation corpus.
# Needs root, as on CI.
SWORD := /usr/share/sword/modules/texts/ztext
$(SYSTEM_STAMP): $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1 || [ ! -f $(SWORD)/engKJV2006eb/ot.bzv ] \
	    || [ ! -f $(SWORD)/spaRV1909eb/ot.bzv ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver fonts-dejavu-core sword-text-kjv sword-text-sparv >/dev/null; \
	fi
	touch $(SYSTEM_STAMP)

system-deps: $(SYSTEM_STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/attnlab demo --out demo-output

test: $(STAMP) $(SYSTEM_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/attention.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache .hypothesis
