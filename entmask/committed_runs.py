"""Which runs a profile's committed records hold: their pretraining and fine-tuning seeds and counts, and the
pretraining runs none of the notebook sections' tables reads (found by config hash), said in one sentence.

What it is: `seeds_of(rec)`, `off_table(rec, want, cfg, seeds)` and `off_note(off)`, for entmask.committed_results.
What it is not: building or showing a section (committed_results), or the records themselves (entmask.records).
"""
from __future__ import annotations

import json
from pathlib import Path

from entmask import runs


def seeds_of(rec: Path) -> tuple[list[int], list[int], int, int]:
    """(pretraining seeds, fine-tuning seeds, pretraining runs, fine-tuning runs) of a records folder."""
    man = json.loads((rec / runs.RECORDS_MANIFEST).read_text())
    pre, ft, n_pre, n_ft = set(), set(), 0, 0
    for rel in man.get("runs", []):
        stage = rel.split("/", 1)[0]
        cfg_file = rec / rel / "config.json"
        if stage not in ("pretrain", "finetune") or not cfg_file.is_file():
            continue
        c = json.loads(cfg_file.read_text())
        if stage == "pretrain":
            n_pre += 1
            pre.add(int(c.get("train", {}).get("seed", 0)))
        else:
            n_ft += 1
            ft.add(int(c.get("seed", 0)))
    return sorted(pre), sorted(ft), n_pre, n_ft


def off_table(rec: Path, want: set[str], cfg, seeds) -> dict:
    """The committed pretraining runs no section table reads (hash not in `want`), how many fine-tuning runs are
    theirs, and which of them another registered experiment reads (`precision`'s fp32 student): run -> name."""
    from entmask.experiments import REGISTRY
    from entmask.experiments.specs import expected_hashes

    man = json.loads((rec / runs.RECORDS_MANIFEST).read_text()).get("runs", [])
    off = sorted(r.split("/")[1] for r in man if r.startswith("pretrain/") and r.rsplit("-", 1)[-1] not in want)
    ft = [r for r in man if r.startswith("finetune/") and any(r.split("/")[2].startswith(f"{o}-") for o in off)]
    other = {n: expected_hashes([n], cfg, seeds) for n, e in REGISTRY.items() if e.rows and n != "plateau"}
    found = {o: next((n for n, h in other.items() if o.rsplit("-", 1)[-1] in h), None) for o in off}
    return {"pretrain": off, "finetune_runs": len(ft), "elsewhere": {o: n for o, n in found.items() if n}}


def off_note(off: dict | None) -> str:
    """The sentence the section header adds about `off_table`'s runs ("" when every committed run is in a table)."""
    n = len(off["pretrain"]) if off else 0
    if not n:
        return ""
    els = off.get("elsewhere", {})
    why = [f"`{r}` is `entmask experiment {e}`'s" for r, e in els.items()]
    if len(els) < n:
        why.append(("the others are" if els else "it is" if n == 1 else "they are")
                   + " of another recipe or corpus, kept for the record")
    names = ", ".join(f"`{x}`" for x in off["pretrain"])
    return (f" {n} of those pretraining runs ({names}) and their {off['finetune_runs']} fine-tuning runs are in no "
            f"table below: {'; '.join(why)}.")
