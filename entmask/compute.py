"""Compute spent by a pretraining run, in FLOPs by part: student training, self scoring, the teacher's cached
scores and KD (beyond the paper: so a strategy that costs more is compared with random masking trained for the
same compute).

What it is: `run_flops`, an estimate from `models.forward_flops`, the scorer's passes per scoring
(entropy.SCORERS) and the steps of each phase (teacher / self / KD / short rows), as metrics.json's "compute".

What it is not: nothing is measured (entmask.bench times real steps); wall time is entmask.resume.WallClock's.
"""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.entropy import SCORERS
from entmask.masking import needs_entropy, schedule_value
from entmask.models import forward_flops
from entmask.phases import short_len, view_steps
from entmask.teacher_scores import uses_reference_scores, uses_teacher_scores


def run_flops(cfg: PretrainConfig, student, teacher, steps: int, steps_per_epoch: int, train_rows: int,
              masked_per_row: float | None = None, candidates_per_row: float | None = None,
              world: int = 1, batch: int | None = None) -> dict:
    """Compute spent by a pretraining run, in FLOPs by part (beyond the paper: so a strategy that costs more is
    compared with random masking trained for the same compute). `student`/`teacher`: their BertConfigs (teacher
    None when unused). Estimates from `models.forward_flops`: training = 3 forwards (forward + backward) of the
    body on every token and of the head on masked positions (all positions without the sparse head); an
    unmasked-view score = 1 forward, head everywhere; a masked-view score = ceil(1/ratio) body passes, head on
    each candidate once; the teacher's cached scores (or the cached reference half of `excess_loss_fixed`) are
    one pass over the train split, counted in full for every run that uses them; KD = one teacher forward per
    step, head on masked positions."""
    m, t, T = cfg.masking, cfg.train, cfg.data.seq_len
    rows = (batch or t.batch_size) * t.grad_accum * world  # rows per optimizer step (batch: per device, if not train's)
    cand = candidates_per_row if candidates_per_row is not None else T - 2
    masked = masked_per_row if masked_per_row is not None else (m.num_tokens or m.ratio * cand)
    fs = forward_flops(student, T)
    ft = forward_flops(teacher, T) if teacher is not None else None
    sc = SCORERS[m.scorer]

    # masked-view passes per scoring, averaged over a mask-rate schedule (ceil(1/ratio) at each step's ratio)
    grid = [i / 99 for i in range(100)] if m.schedule != "constant" and m.ratio_end is not None else [0.0]
    passes = sum(sc.passes(schedule_value(m.ratio, m.ratio_end, m.schedule, q)) for q in grid) / len(grid)

    def scoring(f, n_rows):  # one scoring of n_rows rows by a model with forward FLOPs f
        if sc.view == "unmasked":
            return n_rows * T * (f["body"] + f["head"])
        return n_rows * (passes * T * f["body"] + cand * f["head"])

    teacher_phase = 0
    if uses_teacher_scores(cfg) and (m.source == "self" or cfg.kd.mode == "after-init"):
        teacher_phase = min(steps, m.teacher_epochs * steps_per_epoch)
    self_steps = 0
    if needs_entropy(m.strategy) and cfg.kd.mode != "kd-only" and (m.source == "self" or cfg.kd.mode == "after-init"):
        self_steps = steps - teacher_phase
    # KD after init starts after teacher_epochs whatever the strategy (the trainer's kd_active)
    kd_after = steps - min(steps, m.teacher_epochs * steps_per_epoch)
    kd_steps = {"none": 0, "kd-only": steps, "complete": steps, "after-init": kd_after}[cfg.kd.mode]
    head_positions = masked if t.sparse_head else T
    parts = {"student_train": 3 * steps * rows * (T * fs["body"] + head_positions * fs["head"]),
             "self_scoring": self_steps * scoring(fs, rows)}
    for k, n_short in view_steps(steps, t.short_rows, t.short_fraction, t.length_ramp).items():
        if k == 1 or not n_short:
            continue  # short views: k rows of Ts tokens per row, attention over Ts; the same masked share
        ts = short_len(T, k)
        fss = forward_flops(student, ts)
        short_step = 3 * rows * k * (ts * fss["body"] + (head_positions * (ts - 2) / max(T - 2, 1)) * fss["head"])
        parts["student_train"] += n_short * (short_step - 3 * rows * (T * fs["body"] + head_positions * fs["head"]))
    if sc.uses_reference and sc.reference_score is None and ft is not None:
        parts["self_scoring"] += self_steps * scoring(ft, rows)  # the reference's passes on the same masks
    cached = uses_teacher_scores(cfg) or uses_reference_scores(cfg)  # excess_loss_fixed: the reference's half, once
    parts["teacher_scores"] = scoring(ft, train_rows) if (ft is not None and cached) else 0.0
    parts["kd_teacher"] = kd_steps * rows * (T * ft["body"] + masked * ft["head"]) if ft is not None else 0.0
    return {"flops": {k: float(v) for k, v in parts.items()}, "total_flops": float(sum(parts.values()))}
