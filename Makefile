# rfbackup: the runbook's make targets, backed by the rfbackup CLI.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
RFBACKUP := $(VENV)/bin/rfbackup
STAMP := $(VENV)/.bootstrapped
BINDIR ?= /usr/local/bin

.PHONY: help setup install demo test lint unit db-backup db-backup-prod db-backup-list db-restore \
        db-backup-retention bench bench-pitr mutation

help:
	@echo "make demo       backup -> list -> restore -> compare on a throwaway PostgreSQL"
	@echo "make test       lint, type-check and run the whole test suite"
	@echo "make install    link /usr/local/bin/rfbackup to .venv/bin/rfbackup (as root)"
	@echo "make mutation   mutation score of the guarantee modules (MUTANTS='rfbackup.catalog*' ...)"
	@echo "make db-backup | db-backup-prod | db-backup-list | db-backup-retention"
	@echo "make db-restore BACKUP_FILE=backups/backup_YYYYMMDD_HHMMSS.sql.gz [YES=1] [ARGS='--target-db NAME']"
	@echo "scripts/runbook TARGET [FILE]   the same, exiting with rfbackup's own exit code"

setup: $(STAMP)

$(STAMP): pyproject.toml uv.lock scripts/bootstrap.sh scripts/packages.txt
	@scripts/bootstrap.sh
	@touch $@

install: setup
	ln -sfn "$(abspath $(RFBACKUP))" "$(BINDIR)/rfbackup"
	@echo "$(BINDIR)/rfbackup -> $$(readlink "$(BINDIR)/rfbackup")"

demo: setup
	$(VENV)/bin/python -m rfbackup.sandbox.demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks deploy
	$(VENV)/bin/ruff format --check src tests benchmarks deploy
	$(VENV)/bin/mypy

# Three workers on two cores: most of a test's time is spent waiting on servers and child
# processes (measured on this 2-core machine: 8m25s serial, 4m27s with -n 3). TEST_WORKERS=0
# runs the suite in one process.
TEST_WORKERS ?= 3
unit: setup
	$(VENV)/bin/pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

test: lint unit

# Mutants of the modules that hold guarantees ([tool.mutmut] in pyproject.toml), judged by
# their fast in-process tests. Prints the score and every surviving mutant.
MUTANTS ?= rfbackup.retention* rfbackup.catalog* rfbackup.manifest* rfbackup.storage.local*
mutation: setup
	@rm -rf mutants
	@$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) > /dev/null 2>&1 || true
	@$(VENV)/bin/mutmut export-cicd-stats > /dev/null
	@$(VENV)/bin/python scripts/mutation_report.py mutants/mutmut-cicd-stats.json
	@$(VENV)/bin/mutmut results

# The runbook targets run scripts/runbook, which gets make's variables from the environment
# (never pasted into a shell command line) and exits with rfbackup's own code. make itself
# always exits 2 when a recipe fails and prints "Error N" with rfbackup's code N; callers that
# need the code should run scripts/runbook directly (docs/postgres-backups.md).
export BACKUP_FILE YES ARGS

db-backup: setup
	@scripts/runbook db-backup

db-backup-prod: setup
	@scripts/runbook db-backup-prod

db-backup-list: setup
	@scripts/runbook db-backup-list

db-restore: setup
	@scripts/runbook db-restore

db-backup-retention: setup
	@scripts/runbook db-backup-retention

bench: setup
	$(VENV)/bin/python benchmarks/postgres_backup.py $(BENCH_ARGS)

bench-pitr: setup
	@command -v pgbackrest >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null; }
	$(VENV)/bin/python benchmarks/pitr_vs_pgbackrest.py $(BENCH_ARGS)
