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
# # 05 · Ablations: masking rate, frozen encoder, corpus
#
# Three checks on the main result (Srinivasagan, Hartung & Georges, "Entropy-aware Masking for Masked Language Modeling"
# (`entmask.experiments.PAPER_SOURCE`)):
# - **masking rate**: high- and low-entropy masking at 15%, at 40%, and with a single token per row; each is
#   compared with the same strategy at 15%;
# - **frozen encoder**: the pretrained encoder is frozen and only the classifier trains (§3.3), which measures what
#   pretraining put into the representations, without fine-tuning reshaping them;
# - **corpus**: pretraining on another corpus (BookCorpus by default, which needs the hub or a mirror holding it).
#   In this notebook it runs on the GPU profiles (`bertlet`, `bert`); offline, `make corpus-cpu-wiki` compares
#   `gutenberg` and `wikipedia-good` from the mirror at equal words, at the `cpu-wiki` budget (hours, background).
#
# **You will learn** how sensitive the entropy strategies are to the masking budget, whether their encoders are
# better as frozen features, and (on a GPU) whether the picture holds on other text.
#
# **What the paper reports** (in prose only; each is a row or note of the tables below): BERT max/min at 40% masking
# "no significant improvement over the default 15%" and one masked token "a drop of around 1% in GLUE score" (§3.4);
# BERTlet max with a frozen encoder "an improvement of 3% over the baseline" (§3.3); BERTlet max,init on BookCorpus
# Total 77.09 vs a random baseline of 71.66 (§3.5).

# %%
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
run_corpus = None  # run the corpus ablation (None: only on the GPU profiles bertlet and bert)
corpus_name = None  # NAME[:CONFIG[:SPLIT+SPLIT]] (None: experiments.DEFAULT_OTHER_CORPUS)

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
committed = notebooks.committed_results("05", profile=results_profile, root=root)

# %% [markdown]
# ## 1. Live runs: masking rate
#
# At 40% a row keeps much less context, so high-entropy masking removes exactly the tokens that would have
# disambiguated each other; with one token per row every strategy trains on very little signal per step.

# %%
mr = experiments.mask_rate(cfg, root=root, progress=progress)
notebooks.live_label(mr, cfg)
notebooks.show_report(mr, brief=True)
notebooks.show_figures(mr, ["png", "entropy_png"])

# %% [markdown]
# ## 2. Frozen encoder
#
# The last row of the table is the per-task difference teacher-high − random. Fine-tuning can compensate for a
# weaker pretrained encoder; a frozen probe cannot, so differences between pretraining strategies tend to show more
# clearly here.

# %%
fz = experiments.frozen(cfg, root=root, progress=progress)
notebooks.show_report(fz, brief=True)
notebooks.show_figures(fz, ["png"])

# %% [markdown]
# ## 3. Another corpus

# %%
do_corpus = run_corpus if run_corpus is not None else cfg.profile in notebooks.GPU_PROFILES
if do_corpus:
    cp = experiments.corpus(cfg, corpus_name, root=root, progress=progress)
    notebooks.show_report(cp, brief=True)
    notebooks.show_figures(cp, ["png"])
else:
    cp = None
    print(f"Skipped: the corpus ablation runs on the GPU profiles ({', '.join(notebooks.GPU_PROFILES)}) only; "
          f"this is {cfg.profile!r}. Set run_corpus=True to run it anyway.")

# %% [markdown]
# ## Record results
#
# The numbers below go to `runs/<profile>/notebooks/<this notebook>.metrics.json` together with the resolved config, the
# entmask version and the git commit; `entmask reproduce` prints the headline numbers in its summary.

# %%
metrics = {
    "mask_rate": notebooks.experiment_metrics(mr),
    "frozen": notebooks.experiment_metrics(fz),
    "corpus": notebooks.experiment_metrics(cp) if cp is not None else "skipped",
}
notebooks.record("05_ablations", metrics, cfg,
                 headline=["mask_rate.high-r40.delta", "mask_rate.low-r40.delta", "frozen.baseline.Total",
                           "frozen.teacher-high.Total"])
