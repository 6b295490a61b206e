# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint fmt lock bench install clean

run: $(STAMP)
	$(PY) -m config.devservers run

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m config.devservers test $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

install: $(STAMP)

# flock: two `make test` at once must not install into the same venv together.
$(STAMP): pyproject.toml constraints.txt
	@flock .venv.lock $(MAKE) --no-print-directory _venv

.PHONY: _venv
_venv:
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ] || [ constraints.txt -nt $(STAMP) ]; then \
	  echo "[parley] installing into $(VENV) (pinned by constraints.txt)"; \
	  test -x $(PY) || $(PYTHON) -m venv $(VENV) || exit 1; \
	  $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[local,dev]" || exit 1; \
	  touch $(STAMP); \
	fi

# Re-resolve the newest versions allowed by pyproject.toml and pin them.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e ".[local,dev]"
	{ echo "# Pinned versions for a reproducible install; make uses this as pip's constraints file."; \
	  echo "# Regenerate: make lock"; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf .lock-venv

bench: $(STAMP)
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	@for b in bench/*.py; do $(PY) -m config.devservers exec -- $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv.lock .data .pytest_cache .ruff_cache
