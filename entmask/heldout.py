"""Held-out evaluation of a masked LM, the unigram-plateau criterion, and the callbacks that measure a student
while it trains.

What it is: `heldout_eval` (MLM loss/accuracy on the test split under one fixed random 15% [MASK] masking shared by
every run, HELDOUT_SEED; the unigram accuracy on the same targets; the unmasked-view entropy spread; and
`left_plateau`, the issue's criterion for having left the unigram plateau), `accuracy_by_frequency` (the same
targets in bands of type frequency: what a strategy-masked student learned), `student_entropy_stats` (a model's
per-position entropy spread on PROBE_ROWS test rows), `CurveCallback` (learning-curve points in logs/curve.json
every train.eval_steps) and `EpochCallback` (at each epoch end: logs/epochs.json, and the epoch's model of
self-masking runs, so notebooks can show mask drift).

What it is not: no masking and no loss (entmask.masking_trainer); the reference stage's early stopping, which
evaluates held-back train rows, is entmask.reference.ReferenceStopper.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import TrainerCallback

from entmask import runs, schemas
from entmask.config import PretrainConfig
from entmask.data import Corpus, type_counts, unigram_baseline
from entmask.entropy import model_entropy
from entmask.masking import apply_mask, candidate_mask, select_mask
from entmask.models import score_masked
from entmask.phases import piece_positions, short_len, split_ids, split_rows, view_rows

if TYPE_CHECKING:
    from entmask.masking_trainer import EntropyMaskingTrainer

HELDOUT_SEED = 20240607  # one fixed random masking of the test split, identical for every run (comparability)
PROBE_ROWS = 64  # test rows used to measure a student's per-position entropy spread during training


def heldout_masks(corpus: Corpus) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidates, mask), bool [N, T] each: the test split's one fixed random 15% masking (HELDOUT_SEED), the same
    for every run, so every student is scored on the same targets."""
    cand = candidate_mask(corpus.test_ids, corpus.special_ids, corpus.tokenizer.unk_token_id)
    gen = torch.Generator().manual_seed(HELDOUT_SEED)
    return cand, select_mask(torch.zeros(corpus.test_ids.shape), cand, "random", 0.15, generator=gen)


@torch.no_grad()
def heldout_eval(model, corpus: Corpus, batch_size: int = 64, chunk: int = 1024, rows: int | None = None,
                 short_rows: int = 1, positions: str = "own") -> dict:
    """MLM loss/accuracy on the 5% test split under one fixed random 15% [MASK] masking shared by all runs, the
    unigram (most-frequent-token) accuracy on the same targets, and the model's unmasked-view entropy spread.
    `rows` evaluates the first rows only (learning curves); their masks are those of the full evaluation.
    `short_rows` = k > 1 evaluates the short view (phases.py): the same masked targets, each seen in its
    1/k-row piece, as a student in the short phase is trained, at the `positions` it is trained at
    (train.short_positions)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    tok = corpus.tokenizer
    ids = corpus.test_ids
    cand, mask = heldout_masks(corpus)  # [N, T] each
    if rows is not None:
        ids, cand, mask = ids[:rows], cand[:rows], mask[:rows]
    if short_rows > 1:  # [n, T] -> [n*k, (T-2)/k + 2]; the long row's [CLS]/[SEP] are never candidates
        ids = split_ids(ids, short_rows, tok.cls_token_id, tok.sep_token_id)
        cand, mask = split_rows(cand, short_rows, False, False), split_rows(mask, short_rows, False, False)
        batch_size = max(1, batch_size // short_rows) * short_rows  # whole rows' pieces together (piece_positions)
    masked, labels = apply_mask(ids, mask, tok.mask_token_id, "mask")
    ents = []
    with piece_positions(model, corpus.test_ids.shape[1], short_rows, positions):
        sc = score_masked(model, masked, labels, batch_size)
        for s in range(0, ids.shape[0], batch_size):
            raw = ids[s:s + batch_size].to(dev)
            ent = model_entropy(model, raw, torch.ones_like(raw), chunk)
            ents.append(ent[cand[s:s + batch_size].to(dev)].double().cpu())
    e = torch.cat(ents)
    out = {"heldout_loss": sc["loss"], "heldout_accuracy": sc["accuracy"], "heldout_masked_tokens": sc["masked_tokens"],
           "entropy_mean": float(e.mean()), "entropy_sd": float(e.std())}
    out.update(unigram_baseline(corpus.train_ids, labels[mask], corpus.special_ids))
    # Issue criterion for "left the unigram plateau": twice the top-token rate and varied entropies.
    out["left_plateau"] = bool(out["heldout_accuracy"] >= 2 * out["unigram_accuracy"] and out["entropy_sd"] >= 0.5)
    model.train(was_training)
    return out


FREQ_BINS = (10, 100, 1000)  # rank edges of a target's type by train-split frequency: top 10, 11-100, 101-1,000, rest


def frequency_bins(train_ids: torch.Tensor, targets: torch.Tensor, correct: torch.Tensor, special_ids: list[int],
                   edges: tuple[int, ...] = FREQ_BINS) -> list[dict]:
    """Accuracy per band of target frequency. targets, correct: [M]. A type's rank is 1 + the number of maskable
    types more frequent in the train split (tied types share a rank, so a band never splits them by token id);
    types never seen in training go to the last band. Each band reports its share of the targets, the accuracy
    there, and the unigram plateau's (always the most frequent type: 0 outside the first band)."""
    counts = type_counts(train_ids, special_ids, minlength=int(targets.max()) + 1 if targets.numel() else 0)
    desc = torch.sort(counts, descending=True).values
    # rank[type] = 1 + #types with a strictly larger count: the first index of its count in the descending order
    rank = 1 + torch.searchsorted(-desc, -counts, right=False)
    r = torch.where(counts[targets] > 0, rank[targets], torch.iinfo(torch.int64).max)
    top = int(counts.argmax())
    out, lo = [], 0
    for hi in (*edges, None):
        inside = (r > lo) & (r <= hi) if hi is not None else (r > lo)
        n = int(inside.sum())
        out.append({"band": f"types {lo + 1:,}-{hi:,}" if hi is not None else f"types {lo + 1:,} and rarer",
                    "targets": n, "share": n / max(1, targets.numel()),
                    "accuracy": float(correct[inside].float().mean()) if n else None,
                    "unigram_accuracy": float((targets[inside] == top).float().mean()) if n else None})
        lo = hi if hi is not None else lo
    return out


@torch.no_grad()
def accuracy_by_frequency(model, corpus: Corpus, batch_size: int = 64, edges: tuple[int, ...] = FREQ_BINS) -> dict:
    """heldout_eval's targets (the fixed HELDOUT_SEED random masks of the test split, whole rows) split by how
    frequent their type is (frequency_bins). A student on the unigram plateau scores 0 outside the first band; a
    strategy-masked student (high) that never trains on frequent function words can sit below the unigram rate
    overall and still predict rarer tokens in context, which only these bands show (`entmask heldout RUN`)."""
    was_training = model.training
    model.eval()
    _, mask = heldout_masks(corpus)  # [N, T], heldout_eval's
    masked, labels = apply_mask(corpus.test_ids, mask, corpus.tokenizer.mask_token_id, "mask")
    sc = score_masked(model, masked, labels, batch_size, per_target=True)
    model.train(was_training)
    bands = frequency_bins(corpus.train_ids, labels[labels != -100], sc["correct"], corpus.special_ids, edges)
    return {"heldout_accuracy": sc["accuracy"], "masked_tokens": sc["masked_tokens"], "bands": bands,
            "heldout_seed": HELDOUT_SEED}


BANDS_FILE = "heldout_bands.json"


def bands_of_run(run_dir, data_dir: str | None = None, progress: bool = True) -> dict:
    """accuracy_by_frequency of a finished pretraining run's model on its own corpus, written to
    <run>/heldout_bands.json (exported with its record) and returned."""
    from entmask import config
    from entmask.data import prepare_corpus
    from entmask.models import load_masked_lm, transformers_bars

    run = Path(run_dir).expanduser().resolve()
    cfg = config.load_json(run / "config.json")
    if data_dir:
        cfg.data.data_dir = data_dir
    # the corpus cache of the runs root the run lives in (runs/<profile>/pretrain/<name>), not ./runs
    corpus = prepare_corpus(cfg.data, root=run.parents[2], progress=progress, trust_remote_code=cfg.trust_remote_code)
    with transformers_bars(progress):  # `--quiet` also silences transformers' "Loading weights" bar
        model = load_masked_lm(run / "model", expect_vocab=corpus.tokenizer.vocab_size, role="student")
    out = {"run": run.name, "model": runs.model_key(run),
           **accuracy_by_frequency(model, corpus, cfg.train.eval_batch_size)}
    runs.write_json(run / BANDS_FILE, out)
    return out


class CurveCallback(TrainerCallback):
    """Every `train.eval_steps` steps: held-out masked accuracy and entropy spread on the first `train.eval_rows`
    test rows, appended to logs/curve.json (the learning curves of docs/small-scale.md: when a student leaves the
    unigram plateau, not only whether it has at the end)."""

    def __init__(self, run: Path, corpus: Corpus, cfg: PretrainConfig):
        self.run, self.corpus, self.cfg = run, corpus, cfg
        self.trainer = None

    def _record(self, state, model) -> None:
        t = self.cfg.train
        core = self.trainer.accelerator.unwrap_model(model) if self.trainer else model
        # on the rows being trained: a short-phase student has never seen the positions past its short rows
        k = view_rows(state.global_step, state.max_steps or 1, t.short_rows, t.short_fraction, t.length_ramp)
        ev = heldout_eval(core, self.corpus, t.eval_batch_size, t.entropy_chunk, rows=t.eval_rows, short_rows=k,
                          positions=t.short_positions)
        point = {"step": state.global_step, "rows_len": short_len(self.cfg.data.seq_len, k),
                 "heldout_accuracy": ev["heldout_accuracy"],
                 "heldout_loss": ev["heldout_loss"], "unigram_accuracy": ev["unigram_accuracy"],
                 "entropy_sd": ev["entropy_sd"], "left_plateau": ev["left_plateau"]}
        if k > 1:  # and on whole rows, which GLUE and the final evaluation use: does the short phase carry over?
            whole = heldout_eval(core, self.corpus, t.eval_batch_size, t.entropy_chunk, rows=t.eval_rows)
            point["whole_rows_accuracy"] = whole["heldout_accuracy"]
        path = self.run / "logs" / "curve.json"
        curve = runs.read_json(path, schemas.CURVE) if path.exists() else []
        # A resumed run re-evaluates nothing twice: points at or after the resume step are replaced.
        curve = [c for c in curve if c["step"] < state.global_step] + [point]
        runs.write_json(path, curve)

    def on_step_end(self, args, state, control, model=None, **kw):
        every = self.cfg.train.eval_steps
        if every > 0 and state.is_world_process_zero and (state.global_step % every == 0 or state.global_step == 1):
            self._record(state, model)


@torch.no_grad()
def student_entropy_stats(model, ids: torch.Tensor, corpus: Corpus, include_unk: bool, chunk: int) -> dict:
    dev = next(model.parameters()).device
    ids = ids.to(dev)
    ent = model_entropy(model, ids, torch.ones_like(ids), chunk)  # [P, T]
    cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id, include_unk)
    e = ent[cand].double()
    return {"entropy_mean": float(e.mean()), "entropy_sd": float(e.std())}


class EpochCallback(TrainerCallback):
    """At each epoch end: keep the model of self-masking runs (so notebooks can show mask drift) and record the
    student's per-position entropy spread (self-masking is only meaningful once it varies)."""

    def __init__(self, run: Path, probe: torch.Tensor, corpus: Corpus, keep_epochs: bool):
        self.run, self.probe, self.corpus, self.keep = run, probe, corpus, keep_epochs
        self.trainer: EntropyMaskingTrainer | None = None

    def on_train_begin(self, args, state, control, model=None, **kw):
        # Epoch 0 = the untrained student: the switch point of self-masking `cold`.
        if state.global_step == 0 and self.keep:
            self._record(state, model, epoch=0, source=self.trainer.entropy_source(0) if self.trainer else None)

    def on_epoch_end(self, args, state, control, model=None, **kw):
        tr = self.trainer
        if tr is None:
            return
        epoch = int(round(state.global_step / tr.steps_per_epoch))
        self._record(state, model, epoch=epoch, source=tr.entropy_source(epoch - 1))
        if self.keep and state.is_world_process_zero:
            core = tr.accelerator.unwrap_model(model)
            out = self.run / "epochs" / f"epoch-{epoch}"
            core.save_pretrained(str(out))
            self.corpus.tokenizer.save_pretrained(str(out))

    def _record(self, state, model, epoch: int, source) -> None:
        tr = self.trainer
        if tr is None or not state.is_world_process_zero:
            return
        core = tr.accelerator.unwrap_model(model)  # model_entropy restores train/eval mode itself
        stats = student_entropy_stats(core, self.probe, self.corpus, tr.em.masking.include_unk,
                                      tr.em.train.entropy_chunk)
        stats.update(epoch=epoch, step=state.global_step, source=source)
        path = self.run / "logs" / "epochs.json"
        hist = runs.read_json(path, schemas.EPOCHS) if path.exists() else []
        hist = [h for h in hist if h.get("epoch") != epoch] + [stats]
        runs.write_json(path, sorted(hist, key=lambda h: h["epoch"]))
