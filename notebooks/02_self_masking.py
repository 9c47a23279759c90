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
# # 02 · Self-masking (the paper's Table 2)
#
# Instead of a fixed teacher, the student masks by its *own* entropy, recomputed every step: from the first step
# (`cold`) or after one epoch of teacher-masking (`init`) (Srinivasagan, Hartung & Georges, "Entropy-aware Masking for
# Masked Language Modeling" (`entmask.experiments.PAPER_SOURCE`), §3.2 and Table 2). Early on a student predicts nearly
# the same distribution everywhere, so its own entropies are flat and "high-entropy" masks are close to arbitrary; they
# only become informative as it learns.
#
# **You will learn**
# - how self-masking (cold and init) compares with random and teacher-high masking on GLUE;
# - how the student's own entropy spread evolves epoch by epoch (self-masking means something only once it varies);
# - how far the student's high-entropy masks agree with the teacher's over training (Jaccard per epoch);
# - how to look at the student's masks on a sentence, epoch by epoch, with the mask explorer.
#
# The published Table 2 rows are shown in full beside ours, with Table 1's baseline and max rows for reference
# (e.g. the paper's BERT max,cold row is the majority class on every task: QNLI 49.46, a collapsed classifier).

# %%
import matplotlib.pyplot as plt
from IPython.display import display

from entmask import experiments, exploration, notebooks, widgets

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
overlap_rows = 64  # held-out rows on which self and teacher masks are compared

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
committed = notebooks.committed_results("02", profile=results_profile, root=root)

# %% [markdown]
# ## 1. Live runs: pretrain, fine-tune, tabulate
#
# Random and teacher-high runs are shared with notebook 01 (same config hash); the two self-masking runs are new.

# %%
t2 = experiments.table2(cfg, root=root, progress=progress)
notebooks.live_label(t2, cfg)
notebooks.show_report(t2, brief=True)
notebooks.show_figures(t2, ["png", "curves_png"])

# %% [markdown]
# ## 2. The student's own entropy, epoch by epoch
#
# Before the first step (epoch 0) and at each epoch end the trainer records the student's mean and spread (sd) of
# per-token entropy on fixed held-out rows (`metrics.json`, `epoch_entropy`), with the source the masks came from
# during that epoch. A spread near zero means self-masking is still picking near-arbitrary tokens; the table above
# shows the spread at the switch to self-masking and at the end.

# %%
self_runs = exploration.runs_with_epochs(t2.runs)
drift = exploration.epoch_entropy_frame(self_runs)
notebooks.save_table(drift, "02_self_entropy_drift", cfg)
display(drift.round(3))
if len(drift):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for label, g in drift.groupby("label", sort=False):
        axes[0].plot(g["epoch"], g["entropy_mean"], marker="o", label=label)
        axes[1].plot(g["epoch"], g["entropy_sd"], marker="o", label=label)
    axes[0].set(xlabel="epoch", ylabel="mean entropy (nats)", title="student's own entropy")
    axes[1].set(xlabel="epoch", ylabel="sd of entropy (nats)", title="its spread over tokens")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    notebooks.save_figure(fig, "02_self_entropy_drift", cfg)
    plt.show()

# %% [markdown]
# ## 3. Do the student's masks approach the teacher's?
#
# On the same held-out rows, each kept epoch model picks its own high-entropy mask; we compare it with the mask the
# teacher's entropies give (Jaccard, 1 = the same tokens). "chance" is the overlap two random masks would have.
# A student whose overlap climbs above chance has learnt which tokens are hard in roughly the teacher's way;
# `spearman` is the rank correlation of the two entropies over all maskable tokens.

# %%
held_out = exploration.teacher_view(cfg, split="test", max_rows=overlap_rows, device=dev, progress=progress)
overlap = exploration.self_mask_overlaps(self_runs, held_out, device=dev)
notebooks.save_table(overlap, "02_self_teacher_overlap", cfg)
display(overlap.round(3))
if len(overlap):
    fig, ax = plt.subplots(figsize=(6.5, 3))
    for label, g in overlap.groupby("label", sort=False):
        ax.plot(g["epoch"], g["jaccard"], marker="o", label=label)
    ax.axhline(overlap["chance"].iloc[0], color="#999999", ls="--", lw=1, label="chance")
    ax.set(xlabel="epoch", ylabel="Jaccard with the teacher's mask", ylim=(0, 1),
           title="Self vs teacher high-entropy masks")
    ax.legend(fontsize=8)
    notebooks.save_figure(fig, "02_self_teacher_overlap", cfg)
    plt.show()

# %% [markdown]
# ## 4. The student's masks on a sentence
#
# The explorer's entropy sources are the teacher and every kept epoch of the first self-masking run; below it,
# a static snapshot of the same sentence under each source.

# %%
if self_runs:
    label, run = next(iter(self_runs.items()))
    sources = widgets.sources_from_run(run, teacher=held_out.teacher_dir)
    explorer = widgets.MaskExplorer(sources, held_out.tokenizer, strategy="high", device=dev)
    widgets.show(explorer)
    for name in sources:
        explorer.set_source(name)
        widgets.show(explorer.render_html())
else:
    print("no self-masking run kept per-epoch models")

# %% [markdown]
# ## 5. The paper's claims, judged at this profile
#
# Each claim of §3.1-3.2 compares two rows of Tables 1 and 2 by their GLUE Total (`entmask experiment verdicts`).
# It is *supported* or *contradicted* only when a 95% interval of the difference excludes 0: the wider of a two-level
# bootstrap over seeds and validation examples and a t-interval over pretraining seeds. The bootstrap alone is too
# narrow with two or three seeds (two seeds drawn with replacement give three outcomes, so it excludes 0 whenever both
# seeds' differences share a sign). Only the sign is tested; compare a claimed size ("2-3 points") with Δ yourself.
# A student on the unigram plateau, one pretraining seed, or an unfinished row leaves a claim *unresolved*.
# Held-out MLM loss is not used: a strategy-masked student is tested on random masks it never trained on, so its
# held-out loss can pass log V with no bug. Each claim is judged a second time on the *tasks above majority*:
# those where the mean score of the two compared rows beats the majority class, and not both classifiers collapsed,
# at every seed (symmetric in the two rows, so it cannot make a difference appear), because a Total over tasks where
# every classifier collapses rewards the most profitable collapse. (Table 1's
# rows come from notebook 01; without it only Table 2's claims can be judged.)

# %%
vd = experiments.verdicts(cfg, root=root, progress=progress)
notebooks.show_figures(vd, ["png"])
display(vd.table)

# %% [markdown]
# ## Record results
#
# The numbers below go to `runs/<profile>/notebooks/<this notebook>.metrics.json` together with the resolved config, the
# entmask version and the git commit; `entmask reproduce` prints the headline numbers in its summary.

# %%
last = overlap.groupby("label", sort=False).last() if len(overlap) else None
metrics = {
    "table2": notebooks.experiment_metrics(t2),
    "self_overlap_last_epoch": ({} if last is None else
                                {label: float(row["jaccard"]) for label, row in last.iterrows()}),
    "chance_jaccard": float(overlap["chance"].iloc[0]) if len(overlap) else None,
    "verdicts": dict(zip(vd.table["claim"], vd.table["verdict"])),
    "verdicts_above_majority": dict(zip(vd.table["claim"], vd.table["verdict (tasks above majority)"])),
    "self_entropy_sd_last_epoch": ({} if not len(drift) else
                                   {label: g["entropy_sd"].iloc[-1] for label, g in drift.groupby("label")}),
}
notebooks.record("02_self_masking", metrics, cfg,
                 headline=["table2.self-high-cold.Total", "table2.self-high-init.Total",
                           "table2.self-high-init.delta"])
