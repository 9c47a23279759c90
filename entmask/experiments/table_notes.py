"""The words around an experiment's table: the plateau warning, the teacher line, the BLiMP and truncation notes and
the notes under the table (cells, Total, collapse, Δ, the paper's rows).

What it is: functions of finished rows that return sentences (and the small judgements they rest on: is a row random
masking, did it leave the plateau, how spread were the self-masking entropies).
What it is not: the table's numbers (table._build), figures or files."""
from __future__ import annotations

import statistics
from pathlib import Path

from entmask import paper
from entmask.config import PretrainConfig
from entmask.experiments.collect import _seed_mean_metrics, blimp_of
from entmask.experiments.core import (
    ABSENT,
    COLLAPSE_MARK,
    NOT_RUN,
    PAPER_NAMES,
    PAPER_SOURCE,
    PAPER_TOTALS,
    PAPER_TOTALS_NOT_ROW_MEAN,
    TASK_LABEL,
    TASK_ORDER,
    _num,
    _pct,
    md_text,
)
from entmask.experiments.running import _Run
from entmask.experiments.specs import DELTA_BASE, RUN_SPECS, pretrain_seeds

def random_masked(cfg: PretrainConfig) -> bool:
    """Whether a student trained on the masking its held-out test uses (random 15%): only then does its held-out
    accuracy say whether the recipe left the unigram plateau. A strategy-masked student never saw random masks,
    and a static teacher-masked one can memorise its training rows' answers (exploration.mask_fit: the cpu-long
    high student scores 91% on its training masks and 0.2% on the same strategy's held-out masks), so its
    held-out accuracy near 0 and a loss above log V are no bug and no plateau: GLUE judges it. Static random masks
    (masking.static) are not the held-out test's masks either, and are memorised the same way (the cpu-long
    random-static student: 99.4% of its training masks, 5.4% on the held-out random masks)."""
    return cfg.masking.strategy == "random" and not cfg.masking.static


def plateau_judged(rows: list[dict]) -> list[dict]:
    """The rows whose held-out accuracy tests the recipe: the random-masked ones (`random_masked`, default True),
    or every row of a table that has none (mask-rate), whose accuracies are then under unseen masks."""
    judged = [r for r in rows if r.get("random_masked", True)]
    return judged or rows


def plateau_note(rows: list[dict]) -> str | None:
    """The header warning when a student that tests the recipe (plateau_judged) is still on the unigram plateau;
    None when they all left it.

    rows: dicts with label, left_plateau, heldout_accuracy, unigram_accuracy (from pretraining metrics.json) and
    random_masked (random_masked(cfg); strategy-masked rows are not judged when a random-masked row is present).
    """
    judged = plateau_judged(rows)
    on = [r for r in judged if r.get("left_plateau") is False]
    if not on:
        return None
    figures = "; ".join(f"{r['label']}: held-out masked accuracy {_pct(r.get('heldout_accuracy'))} vs unigram rate "
                        f"{_pct(r.get('unigram_accuracy'))}" for r in on)
    return (f"**Warning: these students are on the unigram plateau.** {len(on)} of {len(judged)} pretrained students "
            f"never left it: they predict little more than the most frequent token ({figures}). Their GLUE scores "
            f"measure classifiers trained on top of near-untrained encoders, so this table is NOT a test of the "
            f"paper's claims; train longer or larger (e.g. --profile cpu-long or bertlet) before reading it as one.")


def self_switch_sd(cfg: PretrainConfig, metrics: dict) -> tuple[float | None, float | None]:
    """The student's per-position entropy s.d. where masking switches to its own entropies (step 0 for `cold`,
    the end of the teacher phase otherwise) and at the end; (None, None) for runs that never self-mask."""
    from entmask.masking import needs_entropy

    m = cfg.masking
    self_masks = needs_entropy(m.strategy) and (m.source == "self" or cfg.kd.mode in ("complete", "after-init"))
    if not self_masks or cfg.kd.mode == "kd-only":
        return None, None
    switch = 0 if (m.source == "self" and m.self_start == "cold" and cfg.kd.mode == "none") else m.teacher_epochs
    hist = {h["epoch"]: h["entropy_sd"] for h in metrics.get("epoch_entropy") or [] if "epoch" in h}
    if not hist:
        return None, None
    return hist.get(switch), hist[max(hist)]


def blimp_note(rs: list[_Run]) -> str:
    """What the BLiMP columns are, and which rows have none."""
    scored = {r.label: blimp_of(r) for r in rs if r.error is None}
    any_doc = next((d for v in scored.values() for d in v.values()), None)
    missing = [RUN_SPECS[k][1] for k, v in scored.items() if not v]
    if any_doc is None:
        return ("BLiMP: no row has BLiMP scores (scored after pretraining by `entmask experiment`, or "
                "`entmask blimp RUN`; a run imported without weights cannot be scored).")
    sc = any_doc.get("scoring", {})
    per = sc.get("per_paradigm")
    return (f"BLiMP: zero-shot accuracy (%) on minimal pairs by pseudo-log-likelihood (Salazar et al. 2020, variant "
            f"{sc.get('variant', '?')}), {per or 'all'} pairs per paradigm x 67 ({sc.get('n', '?')} pairs), mean ± sd "
            f"over pretraining seeds; no fine-tuning, so no fine-tuning noise. Δ BLiMP: against the same reference row "
            f"as Δ Total, with a 95% paired bootstrap over the pairs of every seed both rows were scored at (pair "
            f"noise only, not seed noise)." + (f" Not scored: {', '.join(missing)}." if missing else ""))


def truncation_note(rs: list[_Run], tasks: list[str], max_len: int) -> str:
    """Per task, the share of validation examples that fine-tuning at `max_len` truncated (the records'
    `eval_truncated`; the largest over runs, which share it unless their tokenizers differ). A task truncated a lot
    tests less than its label says: at length 32, 95% of MRPC's pairs lost their ends."""
    got = {}
    for r in rs:
        for f in r.ft:
            if f.get("task") in tasks and _num(f.get("eval_truncated")):
                got[f["task"]] = max(got.get(f["task"], 0.0), float(f["eval_truncated"]))
    parts = [f"{TASK_LABEL[t]} {got[t]:.1%}" if t in got else f"{TASK_LABEL[t]} not recorded" for t in tasks]
    worst = max(got.values()) if got else None
    return (f"Truncated at finetune.max_len={max_len}: share of each task's validation examples longer than that "
            f"(wordpieces with [CLS]/[SEP]): {', '.join(parts) or 'no task'}"
            + (f"; the worst task loses the end of {worst:.0%} of its examples" if worst is not None and worst > 0.10
               else "") + " (runs fine-tuned before 2026-12-05 did not record it).")


def stopping_note(rs: list[_Run], tasks: list[str], fc) -> str | None:
    """Which epoch's checkpoint early stopping kept (the records' `best_epoch`), over every fine-tuning run of the
    table: a recipe whose runs mostly keep epoch 1 stops before the classifier has learned (at cpu-long's lr 2e-4,
    129 of 240 runs did, a source of the 'collapse lottery'). None when no run recorded it (the frozen probe)."""
    best = [(f["task"], int(f["best_epoch"])) for r in rs for f in r.ft
            if f.get("task") in tasks and _num(f.get("best_epoch"))]
    if not best:
        return None
    first = [t for t, e in best if e == 1]
    per = ", ".join(f"{TASK_LABEL[t]} {sum(u == t for u in first)}/{sum(u == t for u, _ in best)}"
                    for t in tasks if any(u == t for u, _ in best))
    epochs = [e for _, e in best]
    return (f"Early stopping (lr {fc.lr:g}, patience {fc.patience}, at most {fc.epochs} epochs) kept the epoch-1 "
            f"checkpoint in {len(first)} of {len(best)} fine-tuning runs ({len(first) / len(best):.0%}; per task "
            f"{per}); median kept epoch {statistics.median(epochs):g}, latest {max(epochs)}.")


def precision_note(rs: list[_Run]) -> str | None:
    """The precision each row's pretraining and fine-tuning ran at (the records' `precision`). `auto` resolves on
    the machine that trains (bf16 on a CPU with AVX512-BF16/AMX, fp32 elsewhere) and is hashed as `auto`, so rows
    of one table can differ: a table that mixes them says so, row by row. None when nothing recorded it."""
    got: dict[str, set] = {}
    for r in rs:
        for s in r.seed_runs:
            p = (s.get("metrics") or {}).get("precision")
            if p:
                got.setdefault(RUN_SPECS[r.label][1], set()).add(f"pretraining {p}")
        for f in r.ft:
            if f.get("precision"):
                got.setdefault(RUN_SPECS[r.label][1], set()).add(f"fine-tuning {f['precision']}")
    if not got:
        return None
    kinds = {k for v in got.values() for k in v}
    if all(len({k for k in kinds if k.startswith(stage)}) <= 1 for stage in ("pretraining", "fine-tuning")):
        return f"Precision: every run recorded the same ({', '.join(sorted(kinds))})."
    rows = "; ".join(f"{label}: {', '.join(sorted(v))}" for label, v in got.items())
    return (f"**Precision differs between rows** ({rows}): `auto` is bf16 where the CPU runs it natively and fp32 "
            f"elsewhere, so rows trained on different machines can differ; experiment `precision` measures what that "
            f"alone changes.")


def _notes(name, cfg, rs, cov, tasks_req, maj, maj_note, paper_key) -> list[str]:
    fc = cfg.finetune
    absent = [t for t in TASK_ORDER if t in tasks_req and maj.get(t) is None]  # no data here at all
    unscored = [t for t in TASK_ORDER if t in tasks_req and t not in cov and t not in absent]
    not_run = [t for t in TASK_ORDER if t not in tasks_req]
    ps = pretrain_seeds(cfg)
    seeds = len(fc.seeds) * len(ps)
    notes = [
        f"Cells: the paper's metric x 100 (accuracy; F1 for MRPC) on the validation split, mean ± sd over "
        f"{seeds} run(s): pretraining seed(s) {ps} x fine-tuning seed(s) {list(fc.seeds)}"
        + (" (sd needs >= 2 runs, so none is shown)" if seeds < 2 else "") + f"; protocol {fc.protocol!r}"
        + (f", train subsampled to {fc.max_train}" if fc.max_train else "")
        + (f", evaluation subsampled to {fc.max_eval}" if fc.max_eval else "") + ".",
        f"Total = mean of the available tasks: {', '.join(TASK_LABEL[t] for t in cov) or 'none'} "
        f"({len(cov)} of 7 tasks)" + (f"; {', '.join(TASK_LABEL[t] for t in absent)} {ABSENT} (no data here, never "
                                      f"filled in)" if absent else "")
        + (f"; {', '.join(TASK_LABEL[t] for t in unscored)} without a score in every run" if unscored else "")
        + (f"; {', '.join(TASK_LABEL[t] for t in not_run)} {NOT_RUN} (not in finetune.tasks)" if not_run else "")
        + ". The paper's Totals average all 7 tasks, so they compare with ours only when the same tasks are covered.",
        f"{COLLAPSE_MARK} = collapsed: in at least one seed the classifier put >= 95% of its predictions on one "
        f"class (a majority-class guesser, whatever its score).",
        maj_note,
    ]
    notes.append(truncation_note(rs, cov, fc.max_len))
    stop = stopping_note(rs, cov, fc)
    if stop:
        notes.append(stop)
    notes.append(blimp_note(rs))
    prec = precision_note(rs)
    if prec and name != "precision":  # there the rows differ by design, and its own section lists them
        notes.append(prec)
    eval_notes = sorted({f["eval_note"] for r in rs for f in r.ft if f.get("eval_note")})
    for en in eval_notes:
        notes.append(f"Offline data: {md_text(en)} (its score is not comparable with the paper's full QNLI).")
    if name in DELTA_BASE:
        notes.append("Δ Total: Total minus that of the same strategy at 15% masking, with a 95% two-level "
                     "paired-bootstrap CI over seeds and validation examples (analysis.bootstrap_total_delta) and a "
                     "t-interval over pretraining seeds (with >= 2).")
    else:
        notes.append("Δ Total: Total minus the random-masking baseline's, with a 95% two-level paired-bootstrap CI "
                     "that resamples seeds (pretraining seeds, then fine-tuning seeds) as well as validation examples "
                     "(analysis.bootstrap_total_delta), so seed-to-seed disagreement widens it; per-seed Δ lists the "
                     "delta of each (pretraining, fine-tuning) seed pair. The seed t-interval is over pretraining "
                     "seeds (with >= 2; at 2 it has 1 degree of freedom, t = 12.71). With 2-3 seeds the bootstrap CI "
                     "is too narrow (two seeds drawn with replacement give three outcomes, so it excludes 0 whenever "
                     "they share a sign); the verdicts use the wider of the two. A CI that contains 0 is no evidence "
                     "of a difference.")
    notes.append("plateau: whether pretraining left the unigram plateau (held-out masked accuracy >= 2x the "
                 "unigram rate and varied entropies); held-out acc / unigram acc are the measured rates. "
                 "self entropy s.d.: the spread of the student's own entropies over positions where masking switches "
                 "to them (step 0 for cold, the end of the teacher phase for init) and at the end; near 0, "
                 "self-masking picks arbitrary tokens.")
    if paper_key:
        notes.append(
            f"Rows marked 'paper' are the published numbers ({PAPER_SOURCE}, entmask/paper.py), strategy names in "
            f"brackets as the paper writes them; the paper's majority-class row is {paper.MAJORITY_NOTE}. "
            f"'Total' is the paper's printed Total; 'row mean (recomputed)' is the mean of its seven cells. "
            f"{PAPER_TOTALS_NOT_ROW_MEAN} of the paper's {PAPER_TOTALS} printed Totals are not the mean of their "
            f"row (BERTlet " + ", ".join(f"{PAPER_NAMES[lab]} {t:.2f} printed vs {m:.2f}"
                                          for _, lab, t, m in paper.totals_not_row_mean()) + "); by the recomputed "
            "means BERTlet's marg and alt lie above its random baseline (70.93), contrary to the paper's §3.1 text.")
    else:
        for pr in paper.PROSE.get(name, []):
            notes.append(f"Paper §{pr['section']} ({pr['model']}, {pr['what']}): {pr['text']}.")
    return notes


def teacher_strength_of(rs: list[_Run]) -> dict | None:
    """The teacher's held-out masked accuracy and loss (same test split and masking as the students'), the random
    student's, and their ratio: teacher-masking tests the paper's idea only if the teacher knows clearly more."""
    from entmask.pretrain import teacher_metrics

    tdirs = [_local_teacher(sr["metrics"]["teacher"], sr["run_dir"]) for r in rs for sr in r.seed_runs
             if sr["metrics"].get("teacher")]
    if not tdirs:
        return None
    tm = teacher_metrics(tdirs[0])
    base = next((r for r in rs if r.label == "baseline" and r.error is None and r.seed_runs), None)
    out = {"teacher": tdirs[0], "teacher_heldout_accuracy": tm.get("heldout_accuracy"),
           "teacher_heldout_loss": tm.get("heldout_loss")}
    if base is not None:
        bm = _seed_mean_metrics(base)
        out.update(student_heldout_accuracy=bm.get("heldout_accuracy"), student_heldout_loss=bm.get("heldout_loss"))
        if out["teacher_heldout_accuracy"] and out["student_heldout_accuracy"]:
            out["ratio"] = out["teacher_heldout_accuracy"] / out["student_heldout_accuracy"]
    return out


def _local_teacher(recorded: str, run_dir) -> str:
    """The teacher a student's metrics name, found in this runs folder: an entmask reference is recorded by the
    absolute path it had where the student trained (`<root>/<profile>/reference/<name>/model`), which on another
    machine, or for imported records, is the same name under this student's profile folder. Shown relative to the
    runs folder, so a report does not depend on where it was built; any other teacher as recorded."""
    rec = Path(str(recorded))
    if rec.name != "model" or rec.parent.parent.name != "reference":
        return str(recorded)
    profile_dir = Path(run_dir).parents[1]  # <root>/<profile>/pretrain/<run> -> <root>/<profile>
    local = profile_dir / "reference" / rec.parent.name / "model"
    return str(local) if (local.parent / "metrics.json").exists() or not rec.parent.exists() else str(recorded)


def _shown(teacher: str) -> str:
    """A reference teacher as `<profile>/reference/<name>/model` (inside the runs folder); any other as given."""
    p = Path(str(teacher))
    return "/".join(p.parts[-4:]) if p.name == "model" and p.parent.parent.name == "reference" else str(teacher)


def teacher_line(rs: list[_Run]) -> str | None:
    t = teacher_strength_of(rs)
    if t is None:
        return None
    if t.get("teacher_heldout_accuracy") is None:
        return f"Teacher `{_shown(t['teacher'])}`: its held-out accuracy was not measured (not an entmask reference)."
    s = (f"Teacher: held-out masked accuracy {_pct(t['teacher_heldout_accuracy'])}, loss "
         f"{t['teacher_heldout_loss']:.2f}")
    if t.get("ratio"):
        s += (f"; random student {_pct(t['student_heldout_accuracy'])}, loss {t['student_heldout_loss']:.2f}: "
              f"the teacher is {t['ratio']:.2f}x its student" + (" (weaker than 1.25x: its entropies barely know more "
                                                               "than the student's own)" if t["ratio"] < 1.25 else ""))
    return s + "."
