# Two commands do everything on a fresh machine with Python and make:
#   make demo   -> virtualenv, install, `tierfed demo` on the embedded PostgreSQL
#   make test   -> virtualenv, install, the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-quick schema typecheck clean install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tierfed demo $(if $(PORT),--port $(PORT),)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no test selected"; exit 0; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

typecheck: $(STAMP)
	$(BIN)/python -m tests.typecheck

schema: $(STAMP)
	$(BIN)/tierfed schema > schema.graphql

clean:
	rm -rf $(VENV) .tierfed .pytest_cache
