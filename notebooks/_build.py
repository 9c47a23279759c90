"""Generate the numbered notebooks (`python notebooks/_build.py`); the .ipynb files are committed without outputs.

Every notebook follows one skeleton: title and what the reader will learn -> "Settings" (imports, versions,
device) -> one cell tagged `parameters` (flat literals; papermill injects new values after it) -> the config cell
(`entmask.config.resolve(profile, dotted overrides)`) -> numbered sections (a call into entmask, display, plots,
prose tying the result to the paper) -> "Record results" (`entmask.notebooks.record`).

Edit this file, not the notebooks, then rerun it. `entmask reproduce` executes only the notebooks listed in
`entmask.notebooks.NOTEBOOKS`, never this script.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETTINGS = '''\
%matplotlib inline
import math
import sys

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import transformers
from IPython.display import Markdown, display

import entmask
from entmask import config, experiments, exploration, notebooks, runs, widgets
from entmask.pretrain import device_name

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
print(f"python {sys.version.split()[0]} · torch {torch.__version__} · transformers {transformers.__version__} · "
      f"entmask {entmask.__version__} (commit {runs.git_commit() or 'unknown'})")
print(f"device: {device_name()}")'''

COMMON_PARAMS = '''\
# Parameters: papermill (and `entmask reproduce`) injects new values in a cell after this one.
# The defaults run on a CPU.
profile = "tiny"  # smoke | tiny | cpu-long | bertlet | bert (entmask.config.PROFILES)
data_dir = None  # offline mirror laid out like ../shared/data (None: $ENTMASK_DATA_DIR, else the hub)
runs_dir = None  # where run folders go (None: $ENTMASK_RUNS_DIR, else the repository's runs/)
seeds = None  # fine-tuning seeds, e.g. [0, 1] (None: the profile's)
device = None  # device of this notebook's own entropy passes and widgets (None: cuda when there is one)
# more config overrides, as strings "dotted.key=value" (what `entmask reproduce --set` passes):
overrides = []
progress = True  # progress bars and training logs'''

CONFIG = '''\
root = notebooks.use_runs_dir(runs_dir, data_dir)  # absolute, and exported so every entmask call agrees
# the parameters above as dotted config keys, then `overrides` ("key=value" strings) on top
dotted = {"data.data_dir": data_dir, "finetune.seeds": seeds@EXTRA@}
dotted = {key: value for key, value in dotted.items() if value is not None}
dotted.update(config.parse_set_args(overrides))
cfg = config.resolve(profile, dotted)
dev = notebooks.pick_device(device)
notebooks.set_progress(progress)
print(f"profile {cfg.profile}: students {cfg.model.preset}, teacher {cfg.teacher}, corpus "
      f"{cfg.data.corpus}/{cfg.data.corpus_config} {cfg.data.splits}")
print(f"fine-tuning {cfg.finetune.tasks} x seeds {cfg.finetune.seeds} · config hash {cfg.short_hash()}")
print(f"runs in {root} · this notebook's own passes on {dev}")'''

PAPER = ('Srinivasagan, Hartung & Georges, "Entropy-aware Masking for Masked Language Modeling" '
         '(`entmask.experiments.PAPER_SOURCE`)')


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None):
    c = new_code_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = tags
    return c


def skeleton(title_md: str, params_extra: str, config_extra: str, sections: list, record_src: str):
    cells = [md(title_md), md("## Settings"), code(SETTINGS), md("## Parameters"),
             code(COMMON_PARAMS + ("\n" + params_extra.strip("\n") if params_extra.strip() else ""),
                  tags=["parameters"]),
             md("## Configuration\n\nEvery setting comes from the profile plus the parameters above, as dotted "
                "config keys (the same keys as `--set` on the command line); the config hash names the runs."),
             code(CONFIG.replace("@EXTRA@", config_extra))]
    cells += sections
    cells += [md("## Record results\n\nThe numbers below go to `runs/<profile>/notebooks/<this notebook>"
                 ".metrics.json` together with the resolved config, the entmask version and the git commit; "
                 "`entmask reproduce` prints the headline numbers in its summary."),
              code(record_src)]
    return cells


# ---- 00 -------------------------------------------------------------------------------------------------------
NB00 = skeleton(
    f"""
# 00 · Entropy exploration: what the teacher finds hard

The paper ({PAPER}) picks the tokens to mask from the entropy H = −Σ p log p of a *teacher's* predictions on
unmasked text: the tokens it is unsure about (high), sure about (low), in between (mid), both ends (marginal), or
high and low in alternating batches, against BERT's random 15%. Before training anything, this notebook looks at
those entropies and at the masks they produce.

**You will learn**
- how the teacher's entropy is distributed over the corpus, and how far it is from log V (a uniform guess);
- how it relates to token frequency, position in the packed sequence and WordPiece `##` pieces;
- which tokens are the most and the least uncertain, in their context;
- how much the six strategies (high, low, mid, marginal, alternating, random) overlap in what they mask;
- how to explore masks on your own sentences with the mask explorer.

The teacher is `cfg.teacher`: offline, the reference teacher that `entmask reference` adapts on the training split;
at `bertlet`/`bert`, BERT-base from the hub as in the paper. Its entropies are computed once and cached beside the
corpus; teacher-masking runs read the same file. At the `smoke` profile the teacher is a few steps old, so its
entropies sit in a narrow band near log V and the patterns below are noise: use `tiny` or larger to read them.
""",
    '''
sample_rows = 256  # rows of the training split analysed (seeded sample)
ratio = 0.15  # masking ratio for the strategy comparison (the paper's 15%)
n_extreme = 12  # tokens in the highest/lowest-entropy lists
context_window = 6  # wordpieces of context either side
position_bin = 8  # positions per bin in the entropy-by-position plot
check_rows = 256  # held-out rows for the teacher's entropy-vs-masked-loss check''',
    "",
    [
        md("""
## 1. Teacher entropy over the corpus

Entropy is in nats: 0 when the teacher puts all its probability on one token, log V ≈ 10.33 for BERT's
V = 30,522 WordPieces when it has no idea. A useful teacher spreads its tokens over that range, which is what
gives the strategies something to choose from (§2 of the paper); a teacher whose entropies are all alike makes
high, low and random masking nearly the same thing.
"""),
        code('''
view = exploration.teacher_view(cfg, split="train", max_rows=sample_rows, device=dev, progress=progress)
table = exploration.view_table(view)
print(f"teacher {view.teacher_dir}")
print(f"{len(view)} sampled rows of the {view.split} split · {len(table):,} maskable tokens "
      f"([CLS]/[SEP]/[UNK] are never masked)")
table["entropy"].describe().to_frame().T.round(3)
'''),
        code('''
fig, ax = plt.subplots(figsize=(7.5, 3))
ax.hist(table["entropy"], bins=60, color="#4C72B0")
ax.axvline(math.log(len(view.tokenizer)), color="#C44E52", ls="--", lw=1, label="log V (uniform guess)")
ax.set(xlabel="teacher entropy (nats)", ylabel="tokens", title="Teacher entropy of every maskable token")
ax.legend()
notebooks.save_figure(fig, "00_entropy_histogram", cfg)
plt.show()
'''),
        md("""
### 1b. Is the teacher stronger than its students, and do its entropies rank what it does not know?

Teacher-masking tests the paper's idea only if the teacher knows clearly more than the student it masks for (the
paper pairs BERT-base with BERTlet). Its held-out masked accuracy is measured exactly as every student's (same test
rows, same fixed random 15% masking). And high-entropy masking assumes that a position the teacher is unsure about
*unmasked* is one it would get wrong *masked*: the Spearman correlation below, over held-out positions, between the
unmasked-view entropy and the teacher's own loss at that position when it is masked (every position masked once, in
ceil(1/0.15) = 7 disjoint passes), says how far that holds.
"""),
        code('''
check = exploration.teacher_check(cfg, max_rows=check_rows, progress=progress)
acc = check["heldout_accuracy"]
print(f"teacher {check['teacher']}")
if acc is not None:
    print(f"held-out masked accuracy {acc:.1%}, loss {check['heldout_loss']:.2f} "
          f"(unigram rate {check['unigram_accuracy']:.1%})")
print(f"{check['positions']:,} held-out positions: Spearman(unmasked entropy, masked loss) "
      f"{check['spearman_entropy_vs_masked_loss']:+.3f}; Spearman(unmasked, masked entropy) "
      f"{check['spearman_entropy_vs_masked_entropy']:+.3f}; top-15% overlap {check['top15_overlap_entropy_vs_loss']:.2f} "
      f"(chance 0.15)")
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
'''),
        md("""
## 2. Entropy and token frequency

Frequent tokens (function words, punctuation) are usually easy to predict from context, rare ones hard: if so,
high-entropy masking is close to *rare-token* masking and low-entropy masking close to masking stop words.
Frequencies are counts in the training split, binned by decade.
"""),
        code('''
by_freq = exploration.entropy_by_frequency(table)
rho = exploration.frequency_correlation(table)
notebooks.save_table(by_freq, "00_entropy_by_frequency", cfg)
print(f"Spearman correlation of train frequency with entropy: {rho:+.3f}")
by_freq.round(3)
'''),
        code('''
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
'''),
        md("""
## 3. Entropy and position

Rows are packed: each is a 126-token window of running text between [CLS] and [SEP] (at length 128; the paper does not state its sequence length),
so a row can start or end mid-sentence. The teacher sees both sides of every token, except near the row's ends,
where one side is cut off; expect somewhat higher entropy at the edges and a flat middle.
"""),
        code('''
by_pos = exploration.entropy_by_position(table, width=position_bin)
fig, ax = plt.subplots(figsize=(7.5, 3))
ax.plot(by_pos["pos_bin"], by_pos["entropy_mean"], marker="o", color="#4C72B0")
ax.fill_between(by_pos["pos_bin"], by_pos["entropy_mean"] - by_pos["entropy_sd"],
                by_pos["entropy_mean"] + by_pos["entropy_sd"], alpha=0.2, color="#4C72B0")
ax.set(xlabel=f"position in the packed row (bins of {position_bin})", ylabel="mean entropy ± sd",
       title="Entropy by position")
notebooks.save_figure(fig, "00_entropy_by_position", cfg)
plt.show()
'''),
        md("""
## 4. WordPiece pieces

A word the vocabulary lacks is split into a first piece and `##` continuation pieces (`em ##bed ##ding`). Given
the first piece, a continuation can be easy to guess, or hard when the word itself is rare; which of the two
holds decides whether low-entropy masking spends its budget on `##` pieces (the mask profile in §6 gives each
strategy's share of them). The offline WikiText-2 (`wikitext-2-v1`) has already replaced rare words by `<unk>`
(→ [UNK], never masked), so split words are fewer here than in WikiText-103.
"""),
        code('''
by_piece = exploration.entropy_by_piece(table)
notebooks.save_table(by_piece, "00_entropy_by_piece", cfg)
display(by_piece.round(3))
fig, ax = plt.subplots(figsize=(6, 3))
sns.boxplot(data=table, x="piece", y="entropy", order=list(by_piece["piece"]), ax=ax, color="#8DA0CB")
ax.set(xlabel="", ylabel="entropy (nats)", title="whole words, first pieces and ## pieces")
notebooks.save_figure(fig, "00_entropy_by_piece", cfg)
plt.show()
'''),
        md("""
## 5. The most and the least uncertain tokens, in context

One occurrence per token (its most extreme); the token is marked `[[like this]]`. High-entropy tokens are what
`high` masks first, low-entropy ones what `low` masks first.
"""),
        code('''
display(Markdown("**Highest entropy**"))
display(exploration.extreme_tokens(table, view.ids, view.tokenizer, n=n_extreme, highest=True,
                                   window=context_window).round(3))
display(Markdown("**Lowest entropy**"))
display(exploration.extreme_tokens(table, view.ids, view.tokenizer, n=n_extreme, highest=False,
                                   window=context_window).round(3))
'''),
        md("""
## 6. How the six strategies' masks differ

The same rows masked by each strategy at the same ratio (through `entmask.masking.select_mask`, exactly as in
training; `alternating` flips its coin once per training batch). The Jaccard index |A ∩ B| / |A ∪ B| of two
masks is 1 when they pick the same tokens and about k / (2n − k) for two independent random masks ("chance").
High and low are disjoint by construction; marginal is half of each; mid sits between them.
"""),
        code('''
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
'''),
        md("""
## 7. The mask explorer

Pick a sentence (from the corpus or your own), a strategy, a ratio and a seed; the tokens are coloured by the
teacher's entropy, the masked ones outlined, and "predict at" shows what the teacher predicts at a masked
position. In a live kernel the controls work; in the HTML export (and any offline viewer) the same view is shown
as static HTML. The comparison below puts one sentence under every strategy side by side, and a standalone HTML
report of a few sentences is written to the results folder.
"""),
        code('''
sentences = exploration.corpus_sentences(view, n=3) + list(widgets.DEFAULT_EXAMPLES)
explorer = widgets.MaskExplorer({"teacher": view.teacher_dir}, view.tokenizer, examples=sentences,
                                sentence=sentences[0], strategy="high", ratio=ratio, device=dev)
widgets.show(explorer)
'''),
        code('''
comparison = widgets.StrategyComparison({"teacher": view.teacher_dir}, view.tokenizer, examples=sentences,
                                        sentence=sentences[-1], ratio=ratio, device=dev)
widgets.show(comparison)
report = notebooks.results_path(cfg, "00_masks_teacher.html")
widgets.static_report(view.teacher_dir, view.tokenizer, sentences[:4], ratio=ratio, source="teacher",
                      title=f"Masks per strategy ({cfg.profile}, teacher)", path=report)
print(f"static report: {report}")
'''),
    ],
    '''
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
''')


# ---- 01 -------------------------------------------------------------------------------------------------------
EXP_PARAMS = '''
tasks = None  # GLUE tasks to fine-tune on, a list such as cola, mrpc, rte (None: the profile's)'''
EXP_CONFIG = ', "finetune.tasks": tasks'

NB01 = skeleton(
    f"""
# 01 · Teacher-masking (the paper's Table 1)

Students are pretrained from scratch with 15% of each row masked by one strategy over the teacher's entropies
(high, low, mid, marginal, alternating) or at random (the baseline), then fine-tuned on GLUE; the table reports
each task's metric and their mean, "Total" ({PAPER}, §3.1 and Table 1).

**You will learn**
- whether choosing masks by the teacher's entropy beats random masking on GLUE at this budget, with a paired
  bootstrap CI on each difference of Totals;
- how our rows compare with the published ones: every cell of the paper's Table 1, its printed Total and the
  recomputed row mean (4 printed Totals are not their row's mean: BERTlet marg 64.17 vs 71.77, alt 62.79 vs 71.86,
  mid 62.23 vs 69.16, and max,cold 61.37 vs 69.37 in Table 2);
- how the masked tokens' entropy differs between strategies, and how pretraining loss and masked accuracy evolve.

Before reading the numbers, read the plateau column: a student that never left the unigram plateau (held-out
masked accuracy near the most-frequent-token rate) is a near-untrained encoder, and the table says so in its
header. The runs are found by their config hash, so later notebooks reuse them.
""",
    EXP_PARAMS, EXP_CONFIG,
    [
        md("""
## 1. Pretrain, fine-tune, tabulate

`experiments.table1` pretrains (or finds) the six students, fine-tunes each on the tasks x seeds, and writes
`runs/<profile>/results/table1.{csv,md,json,png,svg}` plus the curves and entropy figures.
"""),
        code('''
t1 = experiments.table1(cfg, root=root, progress=progress)
notebooks.show_report(t1)
'''),
        md("""
## 2. Total per strategy, and each task

Bars are the mean Total over seeds (dots: each seed), the dashed line the majority class. In the paper the
differences between strategies are a point or two of Total; at small budgets they are easily within the
bootstrap CI, which is why each row carries one.
"""),
        code('''
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
'''),
        md("""
## 3. What each strategy masks, and how training goes

Teacher entropies of the masked tokens (red) against all maskable tokens (grey), strategy by strategy, then the
pretraining curves. High-entropy masking gives the student the hardest predictions: its training loss starts
higher and its masked accuracy is lower than random masking's even when it learns as much.
"""),
        code('''
display(t1.extra["entropy"][["label", "strategy", "n_masked", "masked_mean", "maskable_mean"]].round(3))
notebooks.show_figures(t1, ["entropy_png", "curves_png"])
'''),
        md("""
## 4. Learned or memorised? Each student on its own strategy's masks

A strategy-masked student's held-out accuracy (the table's "held-out acc") is measured under random masks it
never trained on, so it can be near 0 with a loss above log V and no bug. And teacher-masking is static (§2.2:
"the selection of the masks is necessarily static"): every epoch masks the same positions of each row.
`experiments.memorisation` scores each student on the masks it trained with, on training rows it saw and on
held-out rows it did not (`exploration.mask_fit`). A student that learned scores alike on both; one that memorised
its training rows' answers scores high on train and low on held-out. On the `cpu-long` profile (40 epochs of a
454k-token corpus) the high student scored 91.3% on train and 0.2% on held-out rows, the low student 100.0% and
56.9%, the random one 29.2% and 25.1% (docs/results-cpu-long.md). `entmask experiment static` trains the control:
random masks kept every epoch, staticness without entropy; `entmask experiment memorisation` scores every finished
row of Tables 1-2 and the control.
"""),
        code('''
memo = experiments.memorisation(cfg, tables=["table1"], root=root, progress=False)
display(memo.table.drop(columns=["run"]))
notebooks.show_figures(memo, ["png"])
'''),
    ],
    '''
metrics = {"table1": notebooks.experiment_metrics(t1),
           "memorisation": {r["row"]: {"own_masks": r["own masks"], "training_rows": r["own, training rows"],
                                       "heldout_rows": r["own, held-out rows"]} for r in memo.table.to_dict("records")}}
notebooks.record("01_teacher_masking", metrics, cfg,
                 headline=["table1.baseline.Total", "table1.teacher-high.Total", "table1.teacher-high.delta",
                           "table1.teacher-alternating.delta"])
''')


# ---- 02 -------------------------------------------------------------------------------------------------------
NB02 = skeleton(
    f"""
# 02 · Self-masking (the paper's Table 2)

Instead of a fixed teacher, the student masks by its *own* entropy, recomputed every step: from the first step
(`cold`) or after one epoch of teacher-masking (`init`) ({PAPER}, §3.2 and Table 2). Early on a student
predicts nearly the same distribution everywhere, so its own entropies are flat and "high-entropy" masks are
close to arbitrary; they only become informative as it learns.

**You will learn**
- how self-masking (cold and init) compares with random and teacher-high masking on GLUE;
- how the student's own entropy spread evolves epoch by epoch (self-masking means something only once it varies);
- how far the student's high-entropy masks agree with the teacher's over training (Jaccard per epoch);
- how to look at the student's masks on a sentence, epoch by epoch, with the mask explorer.

The published Table 2 rows are shown in full beside ours, with Table 1's baseline and max rows for reference
(e.g. the paper's BERT max,cold row is the majority class on every task: QNLI 49.46, a collapsed classifier).
""",
    EXP_PARAMS + '''
overlap_rows = 64  # held-out rows on which self and teacher masks are compared''', EXP_CONFIG,
    [
        md("""
## 1. Pretrain, fine-tune, tabulate

Random and teacher-high runs are shared with notebook 01 (same config hash); the two self-masking runs are new.
"""),
        code('''
t2 = experiments.table2(cfg, root=root, progress=progress)
notebooks.show_report(t2)
notebooks.show_figures(t2, ["png", "curves_png"])
'''),
        md("""
## 2. The student's own entropy, epoch by epoch

Before the first step (epoch 0) and at each epoch end the trainer records the student's mean and spread (sd) of
per-token entropy on fixed held-out rows (`metrics.json`, `epoch_entropy`), with the source the masks came from
during that epoch. A spread near zero means self-masking is still picking near-arbitrary tokens; the table above
shows the spread at the switch to self-masking and at the end.
"""),
        code('''
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
'''),
        md("""
## 3. Do the student's masks approach the teacher's?

On the same held-out rows, each kept epoch model picks its own high-entropy mask; we compare it with the mask the
teacher's entropies give (Jaccard, 1 = the same tokens). "chance" is the overlap two random masks would have.
A student whose overlap climbs above chance has learnt which tokens are hard in roughly the teacher's way;
`spearman` is the rank correlation of the two entropies over all maskable tokens.
"""),
        code('''
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
'''),
        md("""
## 4. The student's masks on a sentence

The explorer's entropy sources are the teacher and every kept epoch of the first self-masking run; below it,
a static snapshot of the same sentence under each source.
"""),
        code('''
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
'''),
        md("""
## 5. The paper's claims, judged at this profile

Each claim of §3.1-3.2 compares two rows of Tables 1 and 2 by their GLUE Total (`entmask experiment verdicts`).
It is *supported* or *contradicted* only when a 95% interval of the difference excludes 0: the wider of a two-level
bootstrap over seeds and validation examples and a t-interval over pretraining seeds. The bootstrap alone is too
narrow with two or three seeds (two seeds drawn with replacement give three outcomes, so it excludes 0 whenever both
seeds' differences share a sign). Only the sign is tested; compare a claimed size ("2-3 points") with Δ yourself.
A student on the unigram plateau, one pretraining seed, or an unfinished row leaves a claim *unresolved*.
Held-out MLM loss is not used: a strategy-masked student is tested on random masks it never trained on, so its
held-out loss can pass log V with no bug. Each claim is judged a second time on the *tasks above majority*:
those where the mean score of the two compared rows beats the majority class, and not both classifiers collapsed,
at every seed (symmetric in the two rows, so it cannot make a difference appear), because a Total over tasks where
every classifier collapses rewards the most profitable collapse. (Table 1's
rows come from notebook 01; without it only Table 2's claims can be judged.)
"""),
        code('''
vd = experiments.verdicts(cfg, root=root, progress=progress)
notebooks.show_figures(vd, ["png"])
display(vd.table)
'''),
    ],
    '''
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
''')


# ---- 03 -------------------------------------------------------------------------------------------------------
NB03 = skeleton(
    f"""
# 03 · Knowledge distillation with entropy masking

The teacher can do more than choose masks: its predicted distribution at each masked position can also be a
target, mixed with the MLM loss at equal weight: (1 − α)·MLM + α·KL with α = 0.5, at the masked positions only,
the teacher reading the same masked input as the student (the paper says "equal weights" and not how: a mix
halves the MLM gradient of a run without KD at the same learning rate). The paper ({PAPER}) combines the two:
KD with random masking (`kd-only`), KD throughout self-masking initialised by the teacher (`complete`), and KD
switched on only after the teacher-masking epoch (`after-init`).

**You will learn**
- whether distillation adds to entropy masking, or substitutes for it, on GLUE;
- how the KD term and the MLM loss evolve during pretraining;
- which tokens each variant masks.

The paper gives this experiment's numbers in prose only (§3.6): BERTlet max,init + KD after initialization
Total 77.19, complete transfer 76.04, KD alone below both (no number); they are rows of the table below.
""",
    EXP_PARAMS, EXP_CONFIG,
    [
        md("""
## 1. Pretrain, fine-tune, tabulate

The baseline and self-high-init runs are shared with notebooks 01 and 02.
"""),
        code('''
kd = experiments.kd(cfg, root=root, progress=progress)
notebooks.show_report(kd)
notebooks.show_figures(kd, ["png"])
'''),
        md("""
## 2. The losses during pretraining

`kd_loss` is the KL divergence from the teacher's distribution at the masked positions; it is only logged for
runs and phases with KD on. A student that follows the teacher closely drives it down while its MLM loss falls.
"""),
        code('''
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
'''),
    ],
    '''
metrics = {"kd": notebooks.experiment_metrics(kd)}
notebooks.record("03_knowledge_distillation", metrics, cfg,
                 headline=["kd.kd-only.delta", "kd.kd-complete.delta", "kd.kd-after-init.delta"])
''')


# ---- 04 -------------------------------------------------------------------------------------------------------
NB04 = skeleton(
    f"""
# 04 · What fine-tuning changes in the weights

The paper ({PAPER}, §3.7) compares fine-tuned with pretrained weights to see where fine-tuning acts and whether a
model pretrained with entropy masking needs to move less. For every tensor, movement is
‖W_fine-tuned − W_pretrained‖ / ‖W_pretrained‖ (`entmask.analysis.weight_deltas`), aggregated by layer and
component (embeddings, attention Q/K/V/out, feed-forward in/out, LayerNorm).

**You will learn**
- which layers and components move most, per task, for random, teacher-high and — the model the paper analyses —
  high-entropy self-masking after a teacher epoch (`max,init`);
- the paper's own kind of number (the mean element-wise relative change: 7077.23% for the final-layer FFN on MNLI,
  167.33% on CoLA) beside the relative Frobenius change, and why the two disagree by orders of magnitude;
- whether tasks with more training data move the encoder further.

The fine-tuned models are those of notebooks 01 and 02 (same hashes), so this notebook trains nothing new when they
ran.
""",
    EXP_PARAMS, EXP_CONFIG,
    [
        md("""
## 1. Weight movement per task
"""),
        code('''
wt = experiments.weights(cfg, root=root, progress=progress)
notebooks.show_report(wt)
'''),
        md("""
## 2. Heatmaps: layer x component, per task

Rows of the figure are the pretraining runs, columns the tasks; brighter means the fine-tuned tensor moved
further from its pretrained value (one colour scale for all panels).
"""),
        code('''
notebooks.show_figures(wt, ["heatmap_png"])
'''),
        md("""
## 3. Layer x component, as the paper reports it

Each cell pools one layer's component over seeds. `rel` is ‖ΔW‖/‖W‖ of the group taken as one vector; `elem` is
the mean over its elements of |Δw| / |w|, the kind of number the paper gives (§3.7: 7077.23% for BERTlet max,init's
final-layer FFN on MNLI, 167.33% on CoLA). The `final FFN` row is that one cell: the last encoder layer's
feed-forward block. **Why `elem` reaches thousands of percent:** it divides each weight's change by the weight
itself, so the many weights that sit near zero (and biases, which start at zero before pretraining) contribute
huge ratios — a weight of 1e-6 moved by 1e-4 counts 10,000% — while the block as a whole moves by a few percent.
It measures how many near-zero weights moved, not how far the layer moved. **Trust `rel`** to compare layers,
tasks and pretraining strategies; read `elem` only to place our numbers beside the paper's.
"""),
        code('''
view = wt.extra.get("layer_component")
if view is not None and len(view):
    final = view[view["component"] == "final FFN"].set_index("strategy")
    print("final-layer FFN (paper: MNLI 7077.23%, CoLA 167.33% for BERTlet max,init; QQP/MNLI absent offline):")
    display(final)
    display(view)
'''),
        md("""
## 4. Movement against training-set size

One point per (run, task): the whole encoder's relative movement against the number of fine-tuning examples.
"""),
        code('''
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
'''),
    ],
    '''
metrics = {
    "weights": notebooks.experiment_metrics(wt),
    "encoder_movement": {f"{r.label}.{r.task}": float(r.encoder_rel_change) for r in moves.itertuples()},
    "most_moved": {f"{r.label}.{r.task}": r.most_moved for r in moves.itertuples()},
}
notebooks.record("04_weight_analysis", metrics, cfg,
                 headline=[f"encoder_movement.{key}" for key in list(metrics["encoder_movement"])[:3]] or None)
''')


# ---- 05 -------------------------------------------------------------------------------------------------------
NB05 = skeleton(
    f"""
# 05 · Ablations: masking rate, frozen encoder, corpus

Three checks on the main result ({PAPER}):
- **masking rate**: high- and low-entropy masking at 15%, at 40%, and with a single token per row; each is
  compared with the same strategy at 15%;
- **frozen encoder**: the pretrained encoder is frozen and only the classifier trains (§3.3), which measures what
  pretraining put into the representations, without fine-tuning reshaping them;
- **corpus**: pretraining on another corpus (BookCorpus by default). That needs the hub or a mirror holding it
  and a GPU-sized budget, so it runs on the GPU profiles (`bertlet`, `bert`) only.

**You will learn** how sensitive the entropy strategies are to the masking budget, whether their encoders are
better as frozen features, and (on a GPU) whether the picture holds on other text.

**What the paper reports** (in prose only; each is a row or note of the tables below): BERT max/min at 40% masking
"no significant improvement over the default 15%" and one masked token "a drop of around 1% in GLUE score" (§3.4);
BERTlet max with a frozen encoder "an improvement of 3% over the baseline" (§3.3); BERTlet max,init on BookCorpus
Total 77.09 vs a random baseline of 71.66 (§3.5).
""",
    EXP_PARAMS + '''
run_corpus = None  # run the corpus ablation (None: only on the GPU profiles bertlet and bert)
corpus_name = None  # NAME[:CONFIG[:SPLIT+SPLIT]] (None: experiments.DEFAULT_OTHER_CORPUS)''', EXP_CONFIG,
    [
        md("""
## 1. Masking rate

At 40% a row keeps much less context, so high-entropy masking removes exactly the tokens that would have
disambiguated each other; with one token per row every strategy trains on very little signal per step.
"""),
        code('''
mr = experiments.mask_rate(cfg, root=root, progress=progress)
notebooks.show_report(mr)
notebooks.show_figures(mr, ["png", "entropy_png"])
'''),
        md("""
## 2. Frozen encoder

The last row of the table is the per-task difference teacher-high − random. Fine-tuning can compensate for a
weaker pretrained encoder; a frozen probe cannot, so differences between pretraining strategies tend to show more
clearly here.
"""),
        code('''
fz = experiments.frozen(cfg, root=root, progress=progress)
notebooks.show_report(fz)
notebooks.show_figures(fz, ["png"])
'''),
        md("""
## 3. Another corpus
"""),
        code('''
do_corpus = run_corpus if run_corpus is not None else cfg.profile in notebooks.GPU_PROFILES
if do_corpus:
    cp = experiments.corpus(cfg, corpus_name, root=root, progress=progress)
    notebooks.show_report(cp)
    notebooks.show_figures(cp, ["png"])
else:
    cp = None
    print(f"Skipped: the corpus ablation runs on the GPU profiles ({', '.join(notebooks.GPU_PROFILES)}) only; "
          f"this is {cfg.profile!r}. Set run_corpus=True to run it anyway.")
'''),
    ],
    '''
metrics = {
    "mask_rate": notebooks.experiment_metrics(mr),
    "frozen": notebooks.experiment_metrics(fz),
    "corpus": notebooks.experiment_metrics(cp) if cp is not None else "skipped",
}
notebooks.record("05_ablations", metrics, cfg,
                 headline=["mask_rate.high-r40.delta", "mask_rate.low-r40.delta", "frozen.baseline.Total",
                           "frozen.teacher-high.Total"])
''')


# ---- 06 -------------------------------------------------------------------------------------------------------
NB06 = skeleton(
    f"""
# 06 · Beyond the paper: other token scores, soft selection, 80/10/10 self-masking, equal compute

The paper ranks tokens by one score, the entropy of a model's prediction on the *unmasked* sequence, and picks
from it in four ways ({PAPER}). This notebook runs the next questions through the same pipeline, with
`entmask.entropy.SCORERS` and `entmask.masking.SELECTORS` (each new idea is one registered function):
- **masked-view entropy**: each token scored while it is masked, as the student sees it in training
  (ceil(1/ratio) = 7 passes at 15% instead of one);
- **excess loss** (Rho-1): the student's masked loss minus the teacher's, recomputed every step;
- **sampled** selection: k tokens drawn with probability ∝ softmax(entropy / T) (Gumbel top-k);
- **80/10/10 self-masking**: a self-masked student trained with BERT's replacement policy instead of [MASK] only;
- **equal compute**: every run records its FLOPs; random masking trained for 2x the steps draws the line that a
  costlier strategy has to beat.

**You will learn**
- whether a model's unmasked-view entropy ranks what it gets wrong when the token is masked (teacher and students);
- whether a [MASK]-only student's entropies at *visible* positions mean anything (the flaw in self-masking that the
  80/10/10 student addresses);
- what each variant costs in FLOPs and what it buys in GLUE Total and held-out accuracy.

None of these rows is in the paper. At `tiny`/`smoke` the students stay on the unigram plateau and the table says
so; `cpu-long` is the smallest profile at which students leave it.
""",
    EXP_PARAMS + '''
check_rows = 128  # held-out rows for the masked-vs-unmasked view check of each model''', EXP_CONFIG,
    [
        md("""
## 1. Pretrain, fine-tune, tabulate

`random`, `high (teacher)` and `high (self, cold)` are shared with notebooks 01-02 (same config hash); the others
are new. PFLOPs is the pretraining compute (`pretrain.run_flops`: training, the teacher's cached scores, self
scores every step, KD); the teacher's one pass over the corpus is counted in full for every run that uses it.
"""),
        code('''
bz = experiments.beyond(cfg, root=root, progress=progress)
notebooks.show_report(bz)
notebooks.show_figures(bz, ["png", "compute_png"])
'''),
        md("""
## 2. Masked vs unmasked view

High-entropy masking assumes that a token a model is unsure about *unmasked* is one it gets wrong *masked*. Below,
for the teacher and two self-masked students, the Spearman correlation over held-out positions between the
unmasked-view entropy and (a) the model's loss at that position when masked, (b) its masked-view entropy; and the
overlap of the top 15% by each (chance: 0.15). A student trained with [MASK] only never learned to predict at
visible positions, so its unmasked-view entropies need not mean anything; the 80/10/10 student trains with the
true or a random token visible at 20% of its selected positions.
"""),
        code('''
students = {"high (self, cold)": bz.runs.get("self-high-cold"),
            "high (self, cold), 80/10/10": bz.runs.get("self-high-cold-bert")}
checks = {"teacher": exploration.teacher_check(cfg, max_rows=check_rows, progress=progress)}
for label, run in students.items():
    if run is not None:
        checks[label] = exploration.view_check(cfg, run / "model", max_rows=check_rows, progress=progress)
views = pd.DataFrame([{"model": k, "positions": c["positions"],
                       "Spearman(unmasked H, masked loss)": c["spearman_entropy_vs_masked_loss"],
                       "Spearman(unmasked H, masked H)": c["spearman_entropy_vs_masked_entropy"],
                       "top-15% overlap (chance 0.15)": c["top15_overlap_entropy_vs_loss"],
                       "mean masked loss": c["masked_loss_mean"]} for k, c in checks.items()])
notebooks.save_table(views, "06_masked_vs_unmasked_view", cfg)
views.round(3)
'''),
        code('''
fig, axes = plt.subplots(1, len(checks), figsize=(4.2 * len(checks), 3.4), squeeze=False)
for ax, (label, c) in zip(axes[0], checks.items()):
    ax.hexbin(c["unmasked"], c["masked_loss"], gridsize=35, bins="log", cmap="viridis")
    ax.set(xlabel="unmasked-view entropy (nats)", ylabel="loss when masked (nats)",
           title=f"{label}: Spearman {c['spearman_entropy_vs_masked_loss']:+.2f}")
fig.tight_layout()
notebooks.save_figure(fig, "06_masked_vs_unmasked_view", cfg)
plt.show()
'''),
        md("""
## 3. What each variant buys, and at what compute

The rows side by side: GLUE Total and its delta against random masking (two-level bootstrap CI over seeds and
examples), held-out masked accuracy (on random masks, which strategy-masked students never trained on: their
held-out loss can exceed log V with no bug, so judge them by GLUE), and compute. Read a costlier row against
`random, 2x steps`: a strategy that spends 3x the FLOPs of random masking has to beat random masking given more
steps, not only random at equal steps. The compute figure in §1 plots the same.
"""),
        code('''
sc = bz.extra["scores"]
ours = sc[sc["source"] == "ours"].copy()
ours["PFLOPs"] = ours["flops"] / 1e15
ours["x random FLOPs"] = ours["flops"] / float(ours.loc[ours["label"] == "baseline", "flops"].iloc[0])
cols = ["strategy", "Total", "delta", "delta_lo", "delta_hi", "heldout_accuracy", "left_plateau", "PFLOPs",
        "x random FLOPs"]
compute = ours[[c for c in cols if c in ours.columns]]
notebooks.save_table(compute, "06_compute", cfg)
compute.round(4)
'''),
        md("""
## 4. The mask explorer with the new scores

The `score` dropdown switches what the strategy ranks: the paper's entropy, masked-view entropy, the model's own
masked loss, or (with the teacher among the sources) the excess loss of a model over the teacher; `sampled` is
among the strategies. Below the live widget, the same sentence under each score as static HTML (what an exported
notebook shows).
"""),
        code('''
sources = {"teacher": checks["teacher"]["teacher"]}
if bz.runs.get("self-high-cold") is not None:
    sources["student (self, cold)"] = str(bz.runs["self-high-cold"] / "model")
explorer = widgets.MaskExplorer(sources, notebooks.tokenizer_of(cfg), strategy="high", device=dev)
widgets.show(explorer)
explorer.set_source(list(sources)[-1])
for name in explorer.w_scorer.options:
    explorer.set_scorer(name)
    widgets.show(explorer.render_html())
'''),
    ],
    '''
metrics = {
    "beyond": notebooks.experiment_metrics(bz, columns=("Total", "delta", "delta_lo", "delta_hi", "heldout_accuracy",
                                                        "left_plateau", "flops")),
    "views": {k: {m: c[m] for m in ("spearman_entropy_vs_masked_loss", "spearman_entropy_vs_masked_entropy",
                                    "top15_overlap_entropy_vs_loss")} for k, c in checks.items()},
}
notebooks.record("06_beyond_the_paper", metrics, cfg,
                 headline=["beyond.baseline.Total", "beyond.teacher-high-masked.delta",
                           "beyond.self-excess-cold.delta", "beyond.self-high-cold-bert.delta"])
''')


NOTEBOOKS = {
    "00_entropy_exploration": NB00,
    "01_teacher_masking": NB01,
    "02_self_masking": NB02,
    "03_knowledge_distillation": NB03,
    "04_weight_analysis": NB04,
    "05_ablations": NB05,
    "06_beyond_the_paper": NB06,
}


def build(name: str, cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    # The kernel `make kernel` / `make lab` installs for .venv, so JupyterLab opens on entmask's environment;
    # papermill and `entmask reproduce` pass their own kernel name, so they run with whatever kernel they are given.
    nb.metadata["kernelspec"] = {"name": "entmask", "display_name": "Python (entmask)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, c in enumerate(nb.cells):
        c["id"] = f"{name[:2]}-{i:02d}"  # stable ids: regenerating gives the same file
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nbformat.validate(nb)
    return nb


def main() -> int:
    for name, cells in NOTEBOOKS.items():
        nb = build(name, cells)
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
