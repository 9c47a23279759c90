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
# # 04 · What fine-tuning changes in the weights
#
# The paper (Srinivasagan, Hartung & Georges, "Entropy-aware Masking for Masked Language Modeling"
# (`entmask.experiments.PAPER_SOURCE`), §3.7) compares fine-tuned with pretrained weights to see where fine-tuning acts
# and whether a model pretrained with entropy masking needs to move less. For every tensor, movement is ‖W_fine-tuned −
# W_pretrained‖ / ‖W_pretrained‖ (`entmask.analysis.weight_deltas`), aggregated by layer and component (embeddings,
# attention Q/K/V/out, feed-forward in/out, LayerNorm).
#
# **You will learn**
# - which layers and components move most, per task, for random, teacher-high and — the model the paper analyses —
#   high-entropy self-masking after a teacher epoch (`max,init`);
# - the paper's own kind of number (the mean element-wise relative change: 7077.23% for the final-layer FFN on MNLI,
#   167.33% on CoLA) beside the relative Frobenius change, and why the two disagree by orders of magnitude;
# - whether tasks with more training data move the encoder further.
#
# The fine-tuned models are those of notebooks 01 and 02 (same hashes), so this notebook trains nothing new when they
# ran.

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
committed = notebooks.committed_results("04", profile=results_profile, root=root)

# %% [markdown]
# ## 1. Live runs: weight movement per task

# %%
wt = experiments.weights(cfg, root=root, progress=progress)
notebooks.live_label(wt, cfg)
notebooks.show_report(wt, brief=True)

# %% [markdown]
# ## 2. Heatmaps: layer x component, per task
#
# Rows of the figure are the pretraining runs, columns the tasks; brighter means the fine-tuned tensor moved
# further from its pretrained value (one colour scale for all panels).

# %%
notebooks.show_figures(wt, ["heatmap_png"])

# %% [markdown]
# ## 3. Layer x component, as the paper reports it
#
# Each cell pools one layer's component over seeds. `rel` is ‖ΔW‖/‖W‖ of the group taken as one vector; `elem` is
# the mean over its elements of |Δw| / |w|, the kind of number the paper gives (§3.7: 7077.23% for BERTlet max,init's
# final-layer FFN on MNLI, 167.33% on CoLA). The `final FFN` row is that one cell: the last encoder layer's
# feed-forward block. **Why `elem` reaches thousands of percent:** it divides each weight's change by the weight
# itself, so the many weights that sit near zero (and biases, which start at zero before pretraining) contribute
# huge ratios — a weight of 1e-6 moved by 1e-4 counts 10,000% — while the block as a whole moves by a few percent.
# It measures how many near-zero weights moved, not how far the layer moved. **Trust `rel`** to compare layers,
# tasks and pretraining strategies; read `elem` only to place our numbers beside the paper's.

# %%
view = wt.extra.get("layer_component")
if view is not None and len(view):
    final = view[view["component"] == "final FFN"].set_index("strategy")
    print("final-layer FFN (paper: MNLI 7077.23%, CoLA 167.33% for BERTlet max,init; QQP/MNLI absent offline):")
    display(final)
    display(view)

# %% [markdown]
# ## 4. Movement against training-set size
#
# One point per (run, task): the whole encoder's relative movement against the number of fine-tuning examples.

# %%
moves = wt.extra["movement"]
display(moves.round(4))
if len(moves):
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, g in moves.groupby("label", sort=False):
        ax.scatter(g["n_train"], g["encoder_rel_change"], label=label)
        for _, r in g.iterrows():
            ax.annotate(r["task"], (r["n_train"], r["encoder_rel_change"]), fontsize=7)
    ax.set(xlabel="fine-tuning examples", ylabel="encoder movement", title="Movement vs training-set size")
    ax.legend(fontsize=8)
    notebooks.save_figure(fig, "04_movement_vs_size", cfg)
    plt.show()

# %% [markdown]
# ## Record results
#
# The numbers below go to `runs/<profile>/notebooks/<this notebook>.metrics.json` together with the resolved config, the
# entmask version and the git commit; `entmask reproduce` prints the headline numbers in its summary.

# %%
metrics = {
    "weights": notebooks.experiment_metrics(wt),
    "encoder_movement": {f"{r.label}.{r.task}": float(r.encoder_rel_change) for r in moves.itertuples()},
    "most_moved": {f"{r.label}.{r.task}": r.most_moved for r in moves.itertuples()},
}
notebooks.record("04_weight_analysis", metrics, cfg,
                 headline=[f"encoder_movement.{key}" for key in list(metrics["encoder_movement"])[:3]] or None)
