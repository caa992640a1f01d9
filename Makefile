# The two commands of the README: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))

.PHONY: install test demo clean lmms-eval

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,web,test]' $(foreach dir,$(PLUGIN_DIRS),-e $(dir))
	touch $@

# lmms-eval's evaluator in a folder of its own (its full requirements would downgrade av and protobuf in the
# venv); the llavidal adapter's test runs it with PYTHONPATH=$(LMMS_EVAL_SITE)
LMMS_EVAL_SITE := $(VENV)/lmms-eval-site
LMMS_EVAL_REQUIREMENTS := plugins/lmms_eval/lmms-eval-requirements.txt

lmms-eval: $(LMMS_EVAL_SITE)/.installed

$(LMMS_EVAL_SITE)/.installed: $(LMMS_EVAL_REQUIREMENTS) | $(VENV)/.installed
	rm -rf $(LMMS_EVAL_SITE)
	$(BIN)/python -m pip install --quiet --no-deps --target $(LMMS_EVAL_SITE) -r $(LMMS_EVAL_REQUIREMENTS)
	touch $@

test: install lmms-eval
	$(BIN)/python -m pytest

demo: install
	$(BIN)/llavidal demo

clean:
	rm -rf $(VENV) .pytest_cache
