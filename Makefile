# The two commands of README.md. Both set up (or refresh) the project venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The policy `make demo` deploys: the shipped IPI checkpoint (checkpoints/README.md).
CHECKPOINT ?= checkpoints/pick-cube-ipi
EPISODES ?= 5

.PHONY: setup demo test clean

setup:
	@bash scripts/setup/venv.sh $(VENV)

demo: setup
	$(VENV)/bin/stare-bringup --sim --task PickCube-v1 --episodes $(EPISODES) --checkpoint $(CHECKPOINT) \
		--record runs/demo/bags --json runs/demo/summary.json

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build data/demo runs/demo .pytest_cache
