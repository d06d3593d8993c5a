# Two commands for a new user: `make up` (lab hosts + site.yml) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_HOME := $(CURDIR)/.ansible
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Unique per checkout, so two checkouts on one machine never share containers or networks:
# Molecule's and the lab's names carry a hash of the checkout path (inventory/lab computes the
# same default when ansible-playbook is run by hand). Each one can be overridden from the environment.
CHECKOUT_ID := $(shell printf %s "$(CURDIR)" | sha1sum | cut -c1-6)
export MOLECULE_RUN_PREFIX ?= cfm-$(CHECKOUT_ID)
export LAB_PREFIX ?= cf-lab-$(CHECKOUT_ID)-
export LAB_NETWORK ?= cf-lab-$(CHECKOUT_ID)
INVENTORY ?= inventory/lab
# The controller caches of every checkout of this user: downloads, wheelhouses, Molecule state.
MONITORING_CACHE_DIR ?= $(HOME)/.cache/monitoring-stack
SETUP_STAMP := $(VENV)/.setup-$(shell cat requirements.lock app/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)

.PHONY: help setup lock lint pytest molecule test image up down site dry-run summary smoke status logs clean distclean
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## create .venv from the lock files (a no-op when nothing changed)
$(SETUP_STAMP): requirements.lock app/pyproject.toml
	rm -f $(VENV)/.setup-*
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e app
	touch $@

lock: ## re-resolve requirements.lock from pyproject.toml and app/pyproject.toml
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-header --allow-unsafe --all-extras \
	  -o requirements.lock pyproject.toml app/pyproject.toml

lint: setup ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ansible-lint --profile production
	ruff format --check .
	ruff check .

# tests/: most of a test's time is an ansible-playbook child process, so one worker per core.
pytest: setup ## unit tests: app (its own suite and config), rendering, validators, lab tooling
	cd app && python -m pytest
	python -m pytest -n auto --durations=10 tests

molecule: setup image ## every Molecule scenario, one after the other, with a summary table
	python tools/run_scenarios.py $(SCENARIOS)

test: ## lint + pytest + every Molecule scenario, with per-stage timings
	python3 tools/stages.py "lint=$(MAKE) --no-print-directory lint" \
	  "pytest=$(MAKE) --no-print-directory pytest" "molecule=$(MAKE) --no-print-directory molecule"

image: setup ## build (or reuse) the Debian 12 lab image
	python tools/lab_image.py

up: setup image ## lab hosts + site.yml on them, then the summary (what runs where, URLs)
	ansible-playbook -i $(INVENTORY) playbooks/lab.yml
	ansible-playbook -i $(INVENTORY) site.yml
	ansible-playbook -i $(INVENTORY) playbooks/summary.yml

site: setup ## site.yml only, on INVENTORY
	ansible-playbook -i $(INVENTORY) site.yml

dry-run: setup ## site.yml in check mode with diffs: what would change, changing nothing
	ansible-playbook -i $(INVENTORY) site.yml --check --diff

summary: setup ## component, host, deployed/SKIPPED and why, URL to open
	ansible-playbook -i $(INVENTORY) playbooks/summary.yml

down: setup ## remove the lab hosts
	ansible-playbook -i $(INVENTORY) playbooks/lab.yml -e lab_state=absent

smoke: setup ## the spec's smoke tests, end to end
	ansible-playbook -i $(INVENTORY) playbooks/smoke.yml

status: setup ## state of every service, Prometheus targets (monitor:status)
	ansible-playbook -i $(INVENTORY) playbooks/status.yml

logs: setup ## recent log lines of every service (monitor:logs)
	ansible-playbook -i $(INVENTORY) playbooks/logs.yml

clean: ## remove the venv and caches (not the lab)
	rm -rf $(VENV) .ansible .cache

distclean: ## clean + the lab image (LAB_IMAGE) and ~/.cache/monitoring-stack; `make down` first
	$(PYTHON) tools/lab_image_rm.py
	rm -rf $(MONITORING_CACHE_DIR)
	$(MAKE) --no-print-directory clean
