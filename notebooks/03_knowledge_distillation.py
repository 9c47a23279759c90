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
# # 03 · Knowledge distillation with entropy masking
#
# The teacher can do more than choose masks: its predicted distribution at each masked position can also be a target,
# mixed with the MLM loss at equal weight: (1 − α)·MLM + α·KL with α = 0.5, at the masked positions only, the teacher
# reading the same masked input as the student (the paper says "equal weights" and not how: a mix halves the MLM
# gradient of a run without KD at the same learning rate). The paper (Srinivasagan, Hartung & Georges, "Entropy-aware
# Masking for Masked Language Modeling" (`entmask.experiments.PAPER_SOURCE`)) combines the two: KD with random masking
# (`kd-only`), KD throughout self-masking initialised by the teacher (`complete`), and KD switched on only after the
# teacher-masking epoch (`after-init`).
#
# **You will learn**
# - whether distillation adds to entropy masking, or substitutes for it, on GLUE;
# - how the KD term and the MLM loss evolve during pretraining;
# - which tokens each variant masks.
#
# The paper gives this experiment's numbers in prose only (§3.6): BERTlet max,init + KD after initialization
# Total 77.19, complete transfer 76.04, KD alone below both (no number); they are rows of the table below.

# %%
import matplotlib.pyplot as plt

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
committed = notebooks.committed_results("03", profile=results_profile, root=root)

# %% [markdown]
# ## 1. Live runs: pretrain, fine-tune, tabulate
#
# The baseline and self-high-init runs are shared with notebooks 01 and 02.

# %%
kd = experiments.kd(cfg, root=root, progress=progress)
notebooks.live_label(kd, cfg)
notebooks.show_report(kd, brief=True)
notebooks.show_figures(kd, ["png"])

# %% [markdown]
# ## 2. The losses during pretraining
#
# `kd_loss` is the KL divergence from the teacher's distribution at the masked positions; it is only logged for
# runs and phases with KD on. A student that follows the teacher closely drives it down while its MLM loss falls.

# %%
curves = kd.extra["curves"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for label, g in curves.groupby("label", sort=False):
    axes[0].plot(g["step"], g["mlm_loss"], label=label)
    if g["kd_loss"].notna().any():
        axes[1].plot(g["step"], g["kd_loss"], label=label)
axes[0].set(xlabel="step", ylabel="MLM loss", title="masked-LM loss")
axes[1].set(xlabel="step", ylabel="KL(teacher || student)", title="KD term")
axes[0].legend(fontsize=7)
fig.tight_layout()
notebooks.save_figure(fig, "03_kd_losses", cfg)
plt.show()
notebooks.show_figures(kd, ["entropy_png"])

# %% [markdown]
# ## Record results
#
# The numbers below go to `runs/<profile>/notebooks/<this notebook>.metrics.json` together with the resolved config, the
# entmask version and the git commit; `entmask reproduce` prints the headline numbers in its summary.

# %%
metrics = {"kd": notebooks.experiment_metrics(kd)}
notebooks.record("03_knowledge_distillation", metrics, cfg,
                 headline=["kd.kd-only.delta", "kd.kd-complete.delta", "kd.kd-after-init.delta"])
