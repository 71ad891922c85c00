# The two commands of README.md. Both set up (or refresh) the project venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test clean

setup:
	@bash scripts/setup/venv.sh $(VENV)

demo: setup
	$(VENV)/bin/stare-demos --task PickCube-v1 --episodes 5 --out data/demo/PickCube-v1 --overwrite --json data/demo/PickCube-v1.json

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build data/demo .pytest_cache
