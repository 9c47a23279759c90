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
# # 00 · Entropy exploration: what the teacher finds hard
#
# The paper (Srinivasagan, Hartung & Georges, "Entropy-aware Masking for Masked Language Modeling"
# (`entmask.experiments.PAPER_SOURCE`)) picks the tokens to mask from the entropy H = −Σ p log p of a *teacher's*
# predictions on unmasked text: the tokens it is unsure about (high), sure about (low), in between (mid), both ends
# (marginal), or high and low in alternating batches, against BERT's random 15%. Before training anything, this notebook
# looks at those entropies and at the masks they produce.
#
# **You will learn**
# - how the teacher's entropy is distributed over the corpus, and how far it is from log V (a uniform guess);
# - how it relates to token frequency, position in the packed sequence and WordPiece `##` pieces;
# - which tokens are the most and the least uncertain, in their context;
# - how much the six strategies (high, low, mid, marginal, alternating, random) overlap in what they mask;
# - how to explore masks on your own sentences with the mask explorer.
#
# The teacher is `cfg.teacher`: offline, the reference teacher that `entmask reference` adapts on the training split;
# at `bertlet`/`bert`, BERT-base from the hub as in the paper. Its entropies are computed once and cached beside the
# corpus; teacher-masking runs read the same file. At the `smoke` profile the teacher is a few steps old, so its
# entropies sit in a narrow band near log V and the patterns below are noise: use `tiny` or larger to read them.

# %%
import math

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Markdown, display

from entmask import exploration, notebooks, widgets

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
sample_rows = 256  # rows of the training split analysed (seeded sample)
ratio = 0.15  # masking ratio for the strategy comparison (the paper's 15%)
n_extreme = 12  # tokens in the highest/lowest-entropy lists
context_window = 6  # wordpieces of context either side
position_bin = 8  # positions per bin in the entropy-by-position plot
check_rows = 256  # held-out rows for the teacher's entropy-vs-masked-loss check

# %% [markdown]
# ## Configuration
#
# `notebooks.setup` takes the parameters above and prints the versions (python, torch, transformers, entmask and its
# commit) and the device; the config is the profile plus those parameters as dotted config keys (the same keys as
# `--set` on the command line), then `overrides`; the config hash names the runs.

# %%
cfg, dev, root = notebooks.setup(profile, data_dir=data_dir, runs_dir=runs_dir, seeds=seeds, device=device,
                                 overrides=overrides, progress=progress)

# %% [markdown]
# ## 1. Teacher entropy over the corpus
#
# Entropy is in nats: 0 when the teacher puts all its probability on one token, log V ≈ 10.33 for BERT's
# V = 30,522 WordPieces when it has no idea. A useful teacher spreads its tokens over that range, which is what
# gives the strategies something to choose from (§2 of the paper); a teacher whose entropies are all alike makes
# high, low and random masking nearly the same thing.

# %%
view = exploration.teacher_view(cfg, split="train", max_rows=sample_rows, device=dev, progress=progress)
table = exploration.view_table(view)
print(f"teacher {view.teacher_dir}")
print(f"{len(view)} sampled rows of the {view.split} split · {len(table):,} maskable tokens "
      f"([CLS]/[SEP]/[UNK] are never masked)")
table["entropy"].describe().to_frame().T.round(3)

# %%
fig, ax = plt.subplots(figsize=(7.5, 3))
ax.hist(table["entropy"], bins=60, color="#4C72B0")
ax.axvline(math.log(len(view.tokenizer)), color="#C44E52", ls="--", lw=1, label="log V (uniform guess)")
ax.set(xlabel="teacher entropy (nats)", ylabel="tokens", title="Teacher entropy of every maskable token")
ax.legend()
notebooks.save_figure(fig, "00_entropy_histogram", cfg)
plt.show()

# %% [markdown]
# ### 1b. Is the teacher stronger than its students, and do its entropies rank what it does not know?
#
# Teacher-masking tests the paper's idea only if the teacher knows clearly more than the student it masks for (the
# paper pairs BERT-base with BERTlet). Its held-out masked accuracy is measured exactly as every student's (same test
# rows, same fixed random 15% masking). And high-entropy masking assumes that a position the teacher is unsure about
# *unmasked* is one it would get wrong *masked*: the Spearman correlation below, over held-out positions, between the
# unmasked-view entropy and the teacher's own loss at that position when it is masked (every position masked once, in
# ceil(1/0.15) = 7 disjoint passes), says how far that holds.

# %%
check = exploration.teacher_check(cfg, max_rows=check_rows, progress=progress)
acc = check["heldout_accuracy"]
print(f"teacher {check['teacher']}")
if acc is not None:
    print(f"held-out masked accuracy {acc:.1%}, loss {check['heldout_loss']:.2f} "
          f"(unigram rate {check['unigram_accuracy']:.1%})")
print(f"{check['positions']:,} held-out positions: Spearman(unmasked entropy, masked loss) "
      f"{check['spearman_entropy_vs_masked_loss']:+.3f}; Spearman(unmasked, masked entropy) "
      f"{check['spearman_entropy_vs_masked_entropy']:+.3f}; "
      f"top-15% overlap {check['top15_overlap_entropy_vs_loss']:.2f} (chance 0.15)")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].hexbin(check["unmasked"], check["masked_loss"], gridsize=40, bins="log", cmap="viridis")
axes[0].set(xlabel="unmasked-view entropy (nats)", ylabel="loss when masked (nats)",
            title=f"Spearman {check['spearman_entropy_vs_masked_loss']:+.2f}")
axes[1].hexbin(check["unmasked"], check["masked_entropy"], gridsize=40, bins="log", cmap="viridis")
axes[1].set(xlabel="unmasked-view entropy (nats)", ylabel="masked-view entropy (nats)",
            title=f"Spearman {check['spearman_entropy_vs_masked_entropy']:+.2f}")
fig.tight_layout()
notebooks.save_figure(fig, "00_teacher_entropy_vs_masked_loss", cfg)
plt.show()

# %% [markdown]
# ## 2. Entropy and token frequency
#
# Frequent tokens (function words, punctuation) are usually easy to predict from context, rare ones hard: if so,
# high-entropy masking is close to *rare-token* masking and low-entropy masking close to masking stop words.
# Frequencies are counts in the training split, binned by decade.

# %%
by_freq = exploration.entropy_by_frequency(table)
rho = exploration.frequency_correlation(table)
notebooks.save_table(by_freq, "00_entropy_by_frequency", cfg)
print(f"Spearman correlation of train frequency with entropy: {rho:+.3f}")
by_freq.round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].scatter(table["count"].clip(lower=1), table["entropy"], s=3, alpha=0.25, color="#4C72B0")
axes[0].set(xscale="log", xlabel="train-split count of the token", ylabel="entropy (nats)",
            title="every maskable token")
axes[1].errorbar(by_freq["label"], by_freq["entropy_mean"], yerr=by_freq["entropy_sd"], fmt="o-", capsize=3)
axes[1].set(xlabel="train-split count (decade bins)", ylabel="mean entropy ± sd", title="by frequency bin")
axes[1].tick_params(axis="x", rotation=30)
fig.tight_layout()
notebooks.save_figure(fig, "00_entropy_vs_frequency", cfg)
plt.show()

# %% [markdown]
# ## 3. Entropy and position
#
# Rows are packed: each is a 126-token window of running text between [CLS] and [SEP] (at length 128; the paper does not
# state its sequence length), so a row can start or end mid-sentence. The teacher sees both sides of every token, except
# near the row's ends, where one side is cut off; expect somewhat higher entropy at the edges and a flat middle.

# %%
by_pos = exploration.entropy_by_position(table, width=position_bin)
fig, ax = plt.subplots(figsize=(7.5, 3))
ax.plot(by_pos["pos_bin"], by_pos["entropy_mean"], marker="o", color="#4C72B0")
ax.fill_between(by_pos["pos_bin"], by_pos["entropy_mean"] - by_pos["entropy_sd"],
                by_pos["entropy_mean"] + by_pos["entropy_sd"], alpha=0.2, color="#4C72B0")
ax.set(xlabel=f"position in the packed row (bins of {position_bin})", ylabel="mean entropy ± sd",
       title="Entropy by position")
notebooks.save_figure(fig, "00_entropy_by_position", cfg)
plt.show()

# %% [markdown]
# ## 4. WordPiece pieces
#
# A word the vocabulary lacks is split into a first piece and `##` continuation pieces (`em ##bed ##ding`). Given
# the first piece, a continuation can be easy to guess, or hard when the word itself is rare; which of the two
# holds decides whether low-entropy masking spends its budget on `##` pieces (the mask profile in §6 gives each
# strategy's share of them). The offline WikiText-2 (`wikitext-2-v1`) has already replaced rare words by `<unk>`
# (→ [UNK], never masked), so split words are fewer here than in WikiText-103.

# %%
by_piece = exploration.entropy_by_piece(table)
notebooks.save_table(by_piece, "00_entropy_by_piece", cfg)
display(by_piece.round(3))
fig, ax = plt.subplots(figsize=(6, 3))
sns.boxplot(data=table, x="piece", y="entropy", order=list(by_piece["piece"]), ax=ax, color="#8DA0CB")
ax.set(xlabel="", ylabel="entropy (nats)", title="whole words, first pieces and ## pieces")
notebooks.save_figure(fig, "00_entropy_by_piece", cfg)
plt.show()

# %% [markdown]
# ## 5. The most and the least uncertain tokens, in context
#
# One occurrence per token (its most extreme); the token is marked `[[like this]]`. High-entropy tokens are what
# `high` masks first, low-entropy ones what `low` masks first.

# %%
display(Markdown("**Highest entropy**"))
display(exploration.extreme_tokens(table, view.ids, view.tokenizer, n=n_extreme, highest=True,
                                   window=context_window).round(3))
display(Markdown("**Lowest entropy**"))
display(exploration.extreme_tokens(table, view.ids, view.tokenizer, n=n_extreme, highest=False,
                                   window=context_window).round(3))

# %% [markdown]
# ## 6. How the six strategies' masks differ
#
# The same rows masked by each strategy at the same ratio (through `entmask.masking.select_mask`, exactly as in
# training; `alternating` flips its coin once per training batch). The Jaccard index |A ∩ B| / |A ∪ B| of two
# masks is 1 when they pick the same tokens and about k / (2n − k) for two independent random masks ("chance").
# High and low are disjoint by construction; marginal is half of each; mid sits between them.

# %%
masks = exploration.strategy_masks(view.entropy, view.candidates, ratio=ratio, seed=cfg.train.seed,
                                   batch_size=cfg.train.batch_size)
overlap = exploration.jaccard_matrix(masks)
chance = exploration.chance_jaccard(view.candidates, ratio)
mask_profile = exploration.mask_profile(masks, view)
notebooks.save_table(overlap.rename_axis("strategy").reset_index(), "00_mask_overlap", cfg)
notebooks.save_table(mask_profile, "00_mask_profile", cfg)
print(f"chance Jaccard of two random masks at ratio {ratio}: {chance:.3f}")
display(mask_profile.round(3))
fig, ax = plt.subplots(figsize=(5.5, 4.5))
sns.heatmap(overlap, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax, square=True)
ax.set_title("Jaccard overlap of the strategies' masks")
notebooks.save_figure(fig, "00_mask_overlap", cfg)
plt.show()

# %% [markdown]
# ## 7. The mask explorer
#
# Pick a sentence (from the corpus or your own), a strategy, a ratio and a seed; the tokens are coloured by the
# teacher's entropy, the masked ones outlined, and "predict at" shows what the teacher predicts at a masked
# position. In a live kernel the controls work; in the HTML export (and any offline viewer) the same view is shown
# as static HTML. The comparison below puts one sentence under every strategy side by side, and a standalone HTML
# report of a few sentences is written to the results folder.

# %%
sentences = exploration.corpus_sentences(view, n=3) + list(widgets.DEFAULT_EXAMPLES)
explorer = widgets.MaskExplorer({"teacher": view.teacher_dir}, view.tokenizer, examples=sentences,
                                sentence=sentences[0], strategy="high", ratio=ratio, device=dev)
widgets.show(explorer)

# %%
comparison = widgets.StrategyComparison({"teacher": view.teacher_dir}, view.tokenizer, examples=sentences,
                                        sentence=sentences[-1], ratio=ratio, device=dev)
widgets.show(comparison)
report = notebooks.results_path(cfg, "00_masks_teacher.html")
widgets.static_report(view.teacher_dir, view.tokenizer, sentences[:4], ratio=ratio, source="teacher",
                      title=f"Masks per strategy ({cfg.profile}, teacher)", path=report)
print(f"static report: {report}")

# %% [markdown]
# ## Record results
#
# The numbers below go to `runs/<profile>/notebooks/<this notebook>.metrics.json` together with the resolved config, the
# entmask version and the git commit; `entmask reproduce` prints the headline numbers in its summary.

# %%
metrics = {
    "rows": len(view),
    "tokens": len(table),
    "entropy_mean": float(table["entropy"].mean()),
    "entropy_sd": float(table["entropy"].std()),
    "spearman_frequency_entropy": rho,
    "entropy_by_piece": dict(zip(by_piece["piece"], by_piece["entropy_mean"])),
    "jaccard": {f"high_{name}": float(overlap.loc["high", name]) for name in overlap.columns if name != "high"},
    "chance_jaccard": chance,
}
notebooks.record("00_entropy_exploration", metrics, cfg,
                 headline=["entropy_mean", "entropy_sd", "spearman_frequency_entropy", "jaccard.high_random"])
