# Two commands set everything up on a fresh machine:
#   make train   -> venv + CPU torch + package, then trains the default agent (`amago-train`)
#   make test    -> venv + CPU torch + package[test], then runs the default test suite
# torch is installed first from the CPU wheel (torch==2.13.0) so nothing pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
GYMNAX_VERSION ?= 1.0.1
METAWORLD_VERSION ?= 3.1.1
XMINIGRID_VERSION ?= 0.9.3
PROCGEN_VERSION ?= 0.10.7
GYM3_VERSION ?= 0.3.3
GYM_VERSION ?= 0.26.2
PYTEST_ARGS ?=

.PHONY: venv install install-test train test test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip

# torch first: the project's torch range is satisfied by the local CPU wheel, so pip installs nothing more.
$(VENV)/.torch-$(TORCH_VERSION): $(BIN)/python
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	touch $@

venv: $(VENV)/.torch-$(TORCH_VERSION)

install: venv
	$(BIN)/pip install --quiet -e .

# gymnax's own deps without its gymnasium<1.4 pin (see pyproject's gymnax extras), so the suite
# runs on the gymnasium the test extra resolves, gymnax envs included. metaworld likewise without
# its mujoco==3.3.0 pin, on the mujoco the dmc extra needs (see pyproject's metaworld extra),
# xminigrid on gymnax-runtime's jax / flax without its chex and imageio-ffmpeg (see the xland extra),
# and procgen-mirror, gym3 and gym without their numpy<2 pin and gym's import-time notice
# (pyproject's procgen extras; the test extra has procgen-runtime).
install-test: venv
	$(BIN)/pip install --quiet -e ".[test,gymnax-runtime]"
	$(BIN)/pip install --quiet --no-deps "gymnax==$(GYMNAX_VERSION)" "metaworld==$(METAWORLD_VERSION)" \
		"xminigrid==$(XMINIGRID_VERSION)"
	$(BIN)/pip install --quiet --no-deps "procgen-mirror==$(PROCGEN_VERSION)" "gym3==$(GYM3_VERSION)" \
		"gym==$(GYM_VERSION)"

train: install
	$(BIN)/amago-train $(ARGS)

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: install-test
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: venv
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check amago_rl tests benchmarks examples
	$(BIN)/ruff format --check amago_rl tests benchmarks examples

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
