"""Golden records for the redesign of issue 32: what must not change when code moves.

What it is: `python tests/golden/make.py` (with ENTMASK_DATA_DIR pointing at the mirror) writes
  * tests/golden/hashes.json: the config hash of every row of every experiment at every profile and pretraining
    seed, and each profile's reference-teacher hash: a changed hash orphans finished runs (hours of CPU, and the
    records committed under docs/records/), and a running matrix would stop reusing them;
  * tests/golden/cpu-long/*.md: the report-only tables and verdicts rebuilt from the committed records of
    docs/records/cpu-long (two pretraining seeds x three fine-tuning seeds), normalised (timings, dates, paths).
tests/test_golden.py recomputes both and compares. Rerun this only for an intended change of a hash or a report,
and say why in the commit. What it is not: a test of the numbers' correctness (the other tests do that).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORDS = ROOT / "docs" / "records" / "cpu-long"
REPORTS = ("table1", "table2", "static")
REPORT_SETTINGS = {"experiment.pretrain_seeds": [0, 1], "finetune.seeds": [0, 1, 2]}


def config_hashes() -> dict:
    """{profile: {"reference": hash, "default": hash, "experiments": {experiment: {label: {seed: hash}}},
    "finetune": {task: {full|frozen: hash}}}} for every profile."""
    from entmask import config, experiments
    from entmask.config import stable_hash
    from entmask.finetune import finetune_hash_dict
    from entmask.pretrain import reference_hash

    out = {}
    for profile in config.PROFILES:
        cfg = config.resolve(profile)
        seeds = sorted(set(cfg.experiment.pretrain_seeds or [cfg.train.seed]) | {0, 1})
        exps = {}
        for name in experiments.EXPERIMENT_RUNS:
            exps[name] = {label: {str(s): experiments.at_seed(c, s).short_hash() for s in seeds}
                          for label, c in experiments.matrix(name, cfg)}
        exps["plateau"] = {label: c.short_hash() for label, c in experiments.plateau_configs(cfg)}
        # a fine-tuning run's hash (of its FinetuneConfig, as finetune_task computes it), for a fixed stand-in of the
        # pretrained weights' key
        ft = {task: {frozen: stable_hash(finetune_hash_dict(cfg.finetune, task, 0, frozen == "frozen", "golden"))
                     for frozen in ("full", "frozen")} for task in cfg.finetune.tasks}
        out[profile] = {"reference": reference_hash(cfg), "default": cfg.short_hash(), "experiments": exps,
                        "finetune": ft}
    return out


def normalise(text: str, runs_root: Path) -> str:
    """A report without what varies between builds of the same records: timings, dates, the runs folder."""
    text = text.replace(str(runs_root), "<runs>")
    text = re.sub(r"\bin \d+(\.\d+)? s\b", "in <s> s", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", "<time>", text)
    return text


def rebuild_reports(runs_root: Path) -> dict[str, str]:
    """{name: normalised md} of the cpu-long report-only tables and verdicts, built from the committed records
    imported into `runs_root` (an empty folder)."""
    from entmask import config, experiments, records

    records.import_records(RECORDS, root=runs_root)
    cfg = config.resolve("cpu-long", REPORT_SETTINGS)
    out = {}
    for name in REPORTS + ("verdicts",):
        path = experiments.run(name, cfg, progress=False, root=runs_root, **({} if name == "verdicts" else
                                                                             {"train": False}))
        out[name] = normalise(Path(path).read_text(), runs_root)
    return out


def main(argv: list[str]) -> int:
    import tempfile

    which = set(argv) or {"hashes", "reports"}
    if "hashes" in which:
        (HERE / "hashes.json").write_text(json.dumps(config_hashes(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {HERE / 'hashes.json'}")
    if "reports" in which:
        (HERE / "cpu-long").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in rebuild_reports(Path(tmp)).items():
                (HERE / "cpu-long" / f"{name}.md").write_text(text)
                print(f"wrote {HERE / 'cpu-long' / name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
