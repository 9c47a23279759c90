# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python (entmask)
#     language: python
#     name: entmask
# ---

# %% [markdown]
# # 01 · Teacher-masking (the paper's Table 1)
#
# Students are pretrained from scratch with 15% of each row masked by one strategy over the teacher's entropies (high,
# low, mid, marginal, alternating) or at random (the baseline), then fine-tuned on GLUE; the table reports each task's
# metric and their mean, "Total" (Srinivasagan, Hartung & Georges, "Entropy-aware Masking for Masked Language Modeling"
# (`entmask.experiments.PAPER_SOURCE`), §3.1 and Table 1).
#
# **You will learn**
# - whether choosing masks by the teacher's entropy beats random masking on GLUE at this budget, with a paired
#   bootstrap CI on each difference of Totals;
# - how our rows compare with the published ones: every cell of the paper's Table 1, its printed Total and the
#   recomputed row mean (4 printed Totals are not their row's mean: BERTlet marg 64.17 vs 71.77, alt 62.79 vs 71.86,
#   mid 62.23 vs 69.16, and max,cold 61.37 vs 69.37 in Table 2);
# - how the masked tokens' entropy differs between strategies, and how pretraining loss and masked accuracy evolve.
#
# Before reading the numbers, read the plateau column: a student that never left the unigram plateau (held-out
# masked accuracy near the most-frequent-token rate) is a near-untrained encoder, and the table says so in its
# header. The runs are found by their config hash, so later notebooks reuse them.

# %%
import matplotlib.pyplot as plt
from IPython.display import display

from entmask import experiments, notebooks

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
# Parameters: papermill (and `entmask reproduce`) injects new values in a cell after this one.
# The defaults run on a CPU.
profile = "tiny"  # smoke | tiny | cpu-long | cpu-wiki | bertlet | bert (entmask.config.PROFILES)
data_dir = None  # offline mirror laid out like ../shared/data (None: $ENTMASK_DATA_DIR, else the hub)
runs_dir = None  # where run folders go (None: $ENTMASK_RUNS_DIR, else the repository's runs/)
seeds = None  # fine-tuning seeds, e.g. [0, 1] (None: the profile's)
device = None  # device of this notebook's own entropy passes and widgets (None: cuda when there is one)
# more config overrides, as strings "dotted.key=value" (what `entmask reproduce --set` passes):
overrides = []
progress = True  # tqdm bars while training (either way: one line per run, no log dicts)
tasks = None  # GLUE tasks to fine-tune on, a list such as cola, mrpc, rte (None: the profile's)
workers = None  # processes that split an experiment's rows as they train (None: one per core, at most 4; 1 on a GPU)
results_profile = None  # committed records shown first (None: the newest decisive profile with records for this
# section: cpu-wiki, then cpu-long; docs/records/<profile>/)

# %% [markdown]
# ## Configuration
#
# `notebooks.setup` takes the parameters above and prints the versions (python, torch, transformers, entmask and its
# commit) and the device; the config is the profile plus those parameters as dotted config keys (the same keys as
# `--set` on the command line), then `overrides`; the config hash names the runs.

# %%
cfg, dev, root = notebooks.setup(profile, data_dir=data_dir, runs_dir=runs_dir, seeds=seeds, tasks=tasks,
                                 device=device, overrides=overrides, progress=progress, workers=workers)

# %% [markdown]
# ## What the committed results say
#
# First, what the finished runs of the decisive CPU profile say for this section: their records are committed under
# `docs/records/<profile>/` and read here without training anything (`notebooks.committed_results`; the first
# notebook on a machine builds the report, ~20 s, the others reuse it). The claims are judged by the pooled mixed
# model, with the effect sizes the data exclude. The live runs at this notebook's `profile` follow.

# %%
committed = notebooks.committed_results("01", profile=results_profile, root=root)

# %% [markdown]
# ## 1. Live runs: pretrain, fine-tune, tabulate
#
# `experiments.table1` pretrains (or finds) the six students, fine-tunes each on the tasks x seeds, and writes
# `runs/<profile>/results/table1.{csv,md,json,png,svg}` plus the curves and entropy figures.

# %%
t1 = experiments.table1(cfg, root=root, progress=progress)
notebooks.live_label(t1, cfg)
notebooks.show_report(t1, brief=True)

# %% [markdown]
# ## 2. Total per strategy, and each task
#
# Bars are the mean Total over seeds (dots: each seed), the dashed line the majority class. In the paper the
# differences between strategies are a point or two of Total; at small budgets they are easily within the
# bootstrap CI, which is why each row carries one.

# %%
notebooks.show_figures(t1, ["png"])
scores = t1.extra["scores"]
ours = scores[scores["source"] == "ours"].set_index("strategy")
task_cols = [experiments.TASK_LABEL[t] for t in experiments.TASK_ORDER
             if experiments.TASK_LABEL[t] in ours.columns and ours[experiments.TASK_LABEL[t]].notna().any()]
if task_cols:
    ax = ours[task_cols].plot.bar(figsize=(9, 3.2), rot=20)
    ax.set(ylabel="paper metric x 100", title="Per-task scores (mean over seeds)")
    ax.legend(fontsize=8, ncol=len(task_cols))
    notebooks.save_figure(ax.figure, "01_table1_tasks", cfg)
    plt.show()

# %% [markdown]
# ## 3. What each strategy masks, and how training goes
#
# Teacher entropies of the masked tokens (red) against all maskable tokens (grey), strategy by strategy, then the
# pretraining curves. High-entropy masking gives the student the hardest predictions: its training loss starts
# higher and its masked accuracy is lower than random masking's even when it learns as much.

# %%
display(t1.extra["entropy"][["label", "strategy", "n_masked", "masked_mean", "maskable_mean"]].round(3))
notebooks.show_figures(t1, ["entropy_png", "curves_png"])

# %% [markdown]
# ## 4. Learned or memorised? Each student on its own strategy's masks
#
# A strategy-masked student's held-out accuracy (the table's "held-out acc") is measured under random masks it
# never trained on, so it can be near 0 with a loss above log V and no bug. And teacher-masking is static (§2.2:
# "the selection of the masks is necessarily static"): every epoch masks the same positions of each row.
# `experiments.memorisation` scores each student on the masks it trained with, on training rows it saw and on
# held-out rows it did not (`exploration.mask_fit`). A student that learned scores alike on both; one that memorised
# its training rows' answers scores high on train and low on held-out. On the `cpu-long` profile (40 epochs of a
# 454k-token corpus) the high student scored 91.3% on train and 0.2% on held-out rows, the low student 100.0% and
# 56.9%, the random one 29.2% and 25.1% (docs/results-cpu-long.md). `entmask experiment static` trains the control:
# random masks kept every epoch, staticness without entropy; `entmask experiment memorisation` scores every finished
# row of Tables 1-2 and the control.

# %%
memo = experiments.memorisation(cfg, tables=["table1"], root=root, progress=False)
display(memo.table.drop(columns=["run"]))
notebooks.show_figures(memo, ["png"])

# %% [markdown]
# ## Record results
#
# The numbers below go to `runs/<profile>/notebooks/<this notebook>.metrics.json` together with the resolved config, the
# entmask version and the git commit; `entmask reproduce` prints the headline numbers in its summary.

# %%
metrics = {"table1": notebooks.experiment_metrics(t1),
           "memorisation": {r["row"]: {"own_masks": r["own masks"], "training_rows": r["own, training rows"],
                                       "heldout_rows": r["own, held-out rows"]} for r in memo.table.to_dict("records")}}
notebooks.record("01_teacher_masking", metrics, cfg,
                 headline=["table1.baseline.Total", "table1.teacher-high.Total", "table1.teacher-high.delta",
                           "table1.teacher-alternating.delta"])
