"""Records are input (issue 31): a records folder and a run's own JSON files are checked before they are trusted.

Every record here is crafted inside the test (tests/recordkit.py names run folders by their config's hash, as the
stages do); nothing is committed. One test per class: a forged config or metric under a real run's name, JSON of
the wrong shape, a record named like entmask's own files, an export through a link, the mode of written files.
"""
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import recordkit as kit  # tests/recordkit.py

from entmask import CONFIG_VERSION, runs, schemas
from entmask import records as record_io  # (`records` is this file's fixture)
from entmask.cli import main

REPO = Path(__file__).resolve().parents[1]
DEEP = "[" * 10_000 + "]" * 10_000  # nests far past the parser's recursion limit
WRONG_SHAPES = {"null": "null", "a list": "[1, 2]", "a string": '"finished"', "a number": "7",
                "a wrong-typed field": '{"seed": "zero", "paper_score": 50.0}',
                "a wrong-typed nested field": '{"curve": [{"step": "one"}]}',
                "10,000 levels of lists": DEEP, "10,000 levels of objects": '{"a":' * 10_000 + "1" + "}" * 10_000}


def cli(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), [ln for ln in err.splitlines() if ln.strip()]


@pytest.fixture
def records(tmp_path):
    """(runs root, records folder, pretraining run, its cola fine-tuning run): two runs and a teacher exported."""
    root, rec = tmp_path / "runs", tmp_path / "rec"
    pre = kit.pretrain_run(root / "smoke", extra_files=False)
    ft = kit.finetune_run(root / "smoke", pre, extra_files=False)
    kit.reference_run(root / "smoke", extra_files=False)
    assert len(record_io.export_records("smoke", rec, root=root)["exported"]) == 3
    return root, rec, pre, ft


def refused_in_one_line(capsys, rec: Path, fresh: Path, *needles: str) -> str:
    """`entmask runs import` refuses `rec` with exit 2 and one line holding every needle; nothing is imported."""
    code, out, err = cli(capsys, "runs", "import", str(rec), "--runs-dir", str(fresh))
    assert code == 2 and len(err) == 1 and err[0].startswith("entmask: error: "), (out, err)
    assert "nothing was imported" in err[0] and all(n in err[0] for n in needles), err[0]
    assert not fresh.exists()  # not one run, not one folder
    return err[0]


# ---- integrity: a forged config or metric under a real run's name ----------------------------------------------
def test_forged_config_or_metric_under_a_real_runs_name_is_refused(records, capsys, tmp_path):
    root, rec, pre, ft = records
    h = pre.name.rsplit("-", 1)[1]
    code, out, err = cli(capsys, "runs", "import", str(rec), "--runs-dir", str(tmp_path / "clean"))
    assert code == 0 and "imported 2 run(s)" in out[0] and err == []  # the honest export imports

    def spoiled(edit) -> Path:
        bad = tmp_path / f"bad{len(list(tmp_path.glob('bad*')))}"
        shutil.copytree(rec, bad)
        edit(bad)
        return bad

    def edit_json(rel: str, change):
        def edit(bad: Path):
            p = bad / rel
            p.write_text(json.dumps(change(json.loads(p.read_text()))))
        return edit

    # the config changed (another lr) so its hash is not the folder's: the metrics it carries are not that run's
    bad = spoiled(edit_json(f"pretrain/{pre.name}/config.json", lambda d: {**d, "train": {**d["train"], "lr": 9.0}}))
    refused_in_one_line(capsys, bad, tmp_path / "f1", f"pretrain/{pre.name}", f"not to the {h} its name says")
    # another run's config and metrics moved under this name (a seed-1 run posing as seed 0)
    other = kit.pretrain_run(tmp_path / "other" / "smoke", seed=1, extra_files=False)

    def swap(bad: Path):
        for f in ("config.json", "metrics.json"):
            shutil.copyfile(other / f, bad / "pretrain" / pre.name / f)

    refused_in_one_line(capsys, spoiled(swap), tmp_path / "f2", f"hashes to {other.name.rsplit('-', 1)[1]}")
    # the config is intact but the metrics name another run
    bad = spoiled(edit_json(f"pretrain/{pre.name}/metrics.json", lambda d: {**d, "hash": "0123456789"}))
    refused_in_one_line(capsys, bad, tmp_path / "f3", "metrics.json is of another run (hash '0123456789'")
    # metrics of the wrong shape under the real name
    bad = spoiled(edit_json(f"finetune/cola/{ft.name}/metrics.json", lambda d: {**d, "paper_score": "99.9"}))
    refused_in_one_line(capsys, bad, tmp_path / "f4", f"finetune/cola/{ft.name}",
                        "key 'paper_score' is a string, not a number or null")
    # a fine-tuning config whose hash_dict still hashes right but no longer says what its fields say
    bad = spoiled(edit_json(f"finetune/cola/{ft.name}/config.json", lambda d: {**d, "seed": 3}))
    refused_in_one_line(capsys, bad, tmp_path / "f5", "config.json's seed disagrees with its hash_dict")
    # a typed field of the wrong type in a pretraining config (hash as written would still match)
    bad = spoiled(edit_json(f"pretrain/{pre.name}/config.json", lambda d: {**d, "train": {**d["train"], "seed": "0"}}))
    refused_in_one_line(capsys, bad, tmp_path / "f6", "train.seed='0' must be an integer")

    # of another profile (the profile is not hashed, so only the manifest can say where the run belongs)
    bad = spoiled(edit_json(f"pretrain/{pre.name}/config.json", lambda d: {**d, "profile": "tiny"}))
    refused_in_one_line(capsys, bad, tmp_path / "f7", "its config.json is of profile 'tiny', its manifest's 'smoke'")
    # of another kind: the pretraining record listed as a fine-tuning run

    def as_finetune(bad: Path):
        os.replace(bad / "pretrain" / pre.name, bad / "finetune" / "cola" / pre.name)
        man = json.loads((bad / "records.json").read_text())
        (bad / "records.json").write_text(json.dumps({**man, "runs": [f"finetune/cola/{pre.name}"]}))

    refused_in_one_line(capsys, spoiled(as_finetune), tmp_path / "f8",
                        "its config.json is not a fine-tuning run's config.json")

    # several at once: one line each, then the error line; still nothing imported
    both = spoiled(lambda b: [(b / r / "metrics.json").write_text("null") for r in (f"pretrain/{pre.name}",
                                                                                  f"finetune/cola/{ft.name}")])
    code, out, err = cli(capsys, "runs", "import", str(both), "--runs-dir", str(tmp_path / "f9"))
    assert code == 2 and len(err) == 3 and all(e.startswith("  refused: ") for e in err[:2])
    assert "and 1 more record(s), listed above" in err[2] and not (tmp_path / "f9").exists()


def test_the_committed_records_still_import(tmp_path, capsys):
    """docs/records/cpu-long (exported by the real matrix) verifies: every run but the teacher is imported."""
    src = REPO / "docs" / "records" / "cpu-long"
    if not (src / "records.json").is_file():
        pytest.skip("no committed records in this checkout")
    listed = json.loads((src / "records.json").read_text())["runs"]
    code, out, err = cli(capsys, "runs", "import", str(src), "--runs-dir", str(tmp_path))
    n = len([r for r in listed if not r.startswith("reference/")])
    assert code == 0 and err == [] and f"imported {n} run(s) of profile cpu-long" in out[0]


# ---- shape: JSON that parses but is not the file it claims to be ------------------------------------------------
@pytest.mark.parametrize("label", list(WRONG_SHAPES))
def test_wrong_shape_json_is_refused_in_one_line_and_never_finished(label, records, capsys, tmp_path):
    root, rec, pre, ft = records
    text = WRONG_SHAPES[label]
    # in a run folder: never finished; the damaged file is moved aside, byte for byte, never deleted
    run = kit.pretrain_run(tmp_path / "r" / "smoke", extra_files=False)
    (run / "metrics.json").write_text(text)
    assert runs.finished_metrics(run) is None
    assert "not taken as finished" in capsys.readouterr().err
    with pytest.raises(runs.RunError) as e:
        runs.read_json(run / "metrics.json", schemas.METRICS)
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{run / 'metrics.json'} is ")
    code, out, err = cli(capsys, "blimp", str(run))  # a command given the run: one line, exit 2
    assert code == 2 and len(err) == 1 and "metrics.json is corrupt, so this run may not have finished" in err[0]
    assert runs.is_finished(run) is False
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and "metrics.json is not a run's metrics.json" in said[0] and "redoing the run" in said[0]
    aside = list(run.glob("metrics.corrupt-*.json"))
    assert len(aside) == 1 and aside[0].read_text() == text and not (run / "metrics.json").exists()

    # in a record: refused in one line, nothing imported
    (rec / "pretrain" / pre.name / "metrics.json").write_text(text)
    refused_in_one_line(capsys, rec, tmp_path / "fresh", f"pretrain/{pre.name}: its metrics.json is not")


@pytest.mark.parametrize("label", ["null", "a list", "10,000 levels of lists", "a wrong-typed field"])
def test_wrong_shape_meta_and_manifest_are_one_line_errors(label, records, capsys, tmp_path):
    root, rec, pre, ft = records
    text = WRONG_SHAPES[label] if label != "a wrong-typed field" else '{"entmask_version": 1, "config_version": "2"}'
    (pre / "entmask.json").write_text(text)  # a run's metadata, read before the run is reused
    with pytest.raises(runs.RunError, match=r"entmask\.json is (not entmask's run metadata|corrupt)") as e:
        runs.check_version(pre)
    assert "\n" not in str(e.value) and "rerun with --force" in str(e.value)
    (rec / "records.json").write_text(text if label != "a wrong-typed field" else '{"runs": {"a": 1}}')
    code, out, err = cli(capsys, "runs", "import", str(rec), "--runs-dir", str(tmp_path / "fresh"))
    assert code == 2 and len(err) == 1 and "records.json is not a records manifest" in err[0], err
    assert err[0].endswith("export the records again") and not (tmp_path / "fresh").exists()


# ---- names: a record where entmask keeps its own files ----------------------------------------------------------
@pytest.mark.parametrize("suffix", [".lock", ".row.lock", ".tmp"])
def test_a_record_named_like_entmask_own_files_is_refused(suffix, records, capsys, tmp_path):
    root, rec, pre, ft = records
    lock_name = pre.name + suffix  # where pretraining keeps this run's lock (or a row's, or a temporary)
    os.replace(rec / "pretrain" / pre.name, rec / "pretrain" / lock_name)
    man = json.loads((rec / "records.json").read_text())
    man["runs"] = [r.replace(pre.name, lock_name) if r.startswith("pretrain/") else r for r in man["runs"]]
    (rec / "records.json").write_text(json.dumps(man))
    fresh = tmp_path / "fresh"
    refused_in_one_line(capsys, rec, fresh, f"pretrain/{lock_name}", "named like entmask's own lock or temporary")

    # a file inside a record named like a lock or a temporary: the same
    os.replace(rec / "pretrain" / lock_name, rec / "pretrain" / pre.name)
    (rec / "records.json").write_text(json.dumps({**man, "runs": [f"pretrain/{pre.name}"]}))
    (rec / "pretrain" / pre.name / f"metrics.json{suffix}").write_text("")
    refused_in_one_line(capsys, rec, fresh, f"it holds metrics.json{suffix}, named like entmask's own")


def test_a_record_holding_what_an_export_never_writes_is_refused(records, capsys, tmp_path):
    root, rec, pre, ft = records
    (rec / "pretrain" / pre.name / "model" / "model.safetensors").write_bytes(b"\0" * 64)  # forged weights
    refused_in_one_line(capsys, rec, tmp_path / "fresh", "it holds model/model.safetensors, which an export never")


# ---- export: links are never followed out of the folder --------------------------------------------------------
def test_export_never_follows_a_symlink_out_of_its_folder(tmp_path):
    root, rec, outside = tmp_path / "runs", tmp_path / "rec", tmp_path / "outside"
    pre = kit.pretrain_run(root / "smoke", extra_files=False)
    # a finished run elsewhere, reachable only through links: a task folder, a run folder, a whole stage
    elsewhere = kit.pretrain_run(outside / "smoke", "secret-teacher", metrics={"note": "SECRET"}, extra_files=False)
    kit.finetune_run(outside / "smoke", elsewhere, task="rte", extra_files=False)
    (root / "smoke" / "pretrain" / elsewhere.name).symlink_to(elsewhere, target_is_directory=True)
    (root / "smoke" / "finetune").symlink_to(outside / "smoke" / "finetune", target_is_directory=True)
    out = record_io.export_records("smoke", rec, root=root)
    assert out["exported"] == [f"pretrain/{pre.name}"] and out["failed"] == []
    assert out["left_out_files"] == 1 + 2  # its weights, and the two links (counted with what was left out)
    assert "SECRET" not in "".join(p.read_text() for p in rec.rglob("*") if p.is_file())

    # nor out of the records folder it writes to: a stage folder there that links elsewhere is refused
    dest, victim = tmp_path / "rec2", tmp_path / "victim"
    victim.mkdir()
    dest.mkdir()
    (dest / "records.json").write_text(json.dumps({"profile": "smoke", "config_version": CONFIG_VERSION, "runs": []}))
    (dest / "pretrain").symlink_to(victim, target_is_directory=True)  # as a shared records folder might hold
    out = record_io.export_records("smoke", dest, root=root)
    assert out["exported"] == [] and len(out["failed"]) == 1
    assert out["failed"] == [f"pretrain/{pre.name}: {dest / 'pretrain'} is a link; a records folder holds no links: "
                             f"remove it"]
    assert list(victim.iterdir()) == []  # nothing written through the link
    (dest / "records.json").unlink()
    (dest / "records.json").symlink_to(victim / "m.json")
    with pytest.raises(runs.RunError, match="records.json is a link; a records folder holds no links"):
        record_io.export_records("smoke", dest, root=root)
    assert list(victim.iterdir()) == []


# ---- files are created with the user's umask -------------------------------------------------------------------
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        runs.write_json(tmp_path / "metrics.json", {"a": 1})
        runs.atomic_write_bytes(tmp_path / "sub" / "blob.bin", b"x")
        runs.write_json(tmp_path / "metrics.json", {"a": 2})  # replacing a file: the new one's mode, too
    finally:
        os.umask(old)
    for f in (tmp_path / "metrics.json", tmp_path / "sub" / "blob.bin"):
        assert stat.S_IMODE(f.stat().st_mode) == mode, (f, oct(f.stat().st_mode))
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["blob.bin", "metrics.json", "sub"]  # no temporary left


def test_a_teachers_score_files_are_its_own_listed_and_unchanged(tmp_path):
    """A reference record carries the teacher's score caches (entmask.records.scores); the import refuses a record
    whose scores are not exactly those: an unlisted file, another teacher's list, a file of another teacher."""
    import torch
    from safetensors.torch import save_file

    root = tmp_path / "runs"
    ref = kit.reference_run(root / "smoke")
    key = runs.weights_key(ref / "model")
    corpus = root / "cache" / "corpus" / "0123456789"
    corpus.mkdir(parents=True)
    save_file({"entropy": torch.rand(4, 8)}, str(corpus / f"entropy-train-{key}.safetensors"),
              metadata={"teacher_key": key, "corpus": corpus.name, "split": "train"})
    save_file({"entropy": torch.rand(4, 8)}, str(corpus / "entropy-train-abcdefabcdef.safetensors"),
              metadata={"teacher_key": "abcdefabcdef"})  # another teacher's: not this record's
    rec = tmp_path / "records"
    record_io.export_records("smoke", rec, root)
    r = rec / "reference" / ref.name
    listed = json.loads((r / "scores.json").read_text())
    assert [f["path"] for f in listed["files"]] == [f"scores/{corpus.name}/entropy-train-{key}.safetensors"]
    got = record_io.import_records(rec, tmp_path / "a")
    assert got["imported"] == [f"reference/{ref.name}"] and got["scores"] == 1
    assert (tmp_path / "a" / "cache" / "corpus" / corpus.name / f"entropy-train-{key}.safetensors").read_bytes() == (
        corpus / f"entropy-train-{key}.safetensors").read_bytes()
    assert runs.weightless_teacher(tmp_path / "a" / "smoke" / "reference" / ref.name / "model")

    spoil = {
        "does not list": lambda: (r / "scores" / corpus.name / "extra.txt").write_text("x"),
        "lists 0 file": lambda: (r / "scores.json").write_text(json.dumps({**listed, "files": []})),
        "is of teacher 'abcdefabcdef'": lambda: (r / "scores.json").write_text(
            json.dumps({**listed, "teacher_key": "abcdefabcdef"})),
        "was not computed by teacher": lambda: save_file(
            {"entropy": torch.rand(4, 8)}, str(r / listed["files"][0]["path"]), metadata={"teacher_key": "x"}),
    }
    for why, act in spoil.items():
        shutil.copytree(r, tmp_path / "keep")
        act()
        if why == "was not computed by teacher":  # a consistent list, so only the metadata gives it away
            f = r / listed["files"][0]["path"]
            item = {**listed["files"][0], "bytes": f.stat().st_size,
                    "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
            (r / "scores.json").write_text(json.dumps({**listed, "files": [item]}))
        with pytest.raises(record_io.RecordsRefused, match=why):
            record_io.import_records(rec, tmp_path / "b")
        assert not (tmp_path / "b").exists()
        shutil.rmtree(r)
        shutil.move(tmp_path / "keep", r)
