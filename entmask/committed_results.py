"""What the committed records say, section by section: the opening of each paper notebook (01-05).

The decisive CPU profile's finished runs are committed as records (docs/records/<profile>/: configs, metrics, logs,
predictions; no weights). `committed_results("01")` shows, for notebook 01's section, what they say: each of the
paper's claims judged by the pooled mixed model, with the effect sizes the data exclude ("a gain of >= 0.2 points is
excluded"), the section's table with the paper's rows beside ours, and the verdict figure. A section whose
experiments have no committed runs gets one line that says so.

How: the records are imported (verified, as `entmask runs import` does) into a temporary runs folder that is
removed afterwards (in /dev/shm where it has room), the report-only tables (`entmask experiment table1,table2,static
--report-only`, their figures not drawn) and the verdicts are built there, and what the notebooks show is kept in
runs/cache/committed/<profile>-<key>/, keyed by the records' manifest and file sizes and by entmask's source: the
first notebook on a machine builds it (cpu-wiki 5 s and cpu-long 25 s on the AVX2 CPU beside a running matrix,
entmask already imported; 6 and 45 s before the figures and the disk were skipped), the others read it (well under
a second). Nothing is trained; no lock of the runs folder is taken
(the import's own locks are those of the temporary folder). The profile is the newest of DECISIVE_PROFILES with
rows of its own for the section, followed by any older one's pooled verdicts on the section's claims, or the one
named (`results_profile` in the notebooks' parameters).

What it is not: the statistics (entmask.experiments, entmask.stats), the records' checks (entmask.records) or the
write-up of the results (docs/results-<profile>.md); it adds no number of its own. The line after this block that
says whether the notebook's own live runs are evidence or a demonstration is entmask.notebook_results.live_label.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from entmask import runs
from entmask.committed_runs import off_note, off_table, seeds_of

REPO = Path(__file__).resolve().parent.parent
RECORDS_DIR = REPO / "docs" / "records"
DECISIVE_PROFILES = ("cpu-wiki", "cpu-long")  # newest first: the first with records for a section is shown
# notebook -> (what its section is, the experiments whose committed records it shows)
SECTIONS = {
    "01": ("Table 1: teacher-masking, and the static-mask control", ("table1", "static")),
    "02": ("Table 2: self-masking", ("table2",)),
    "03": ("knowledge distillation", ("kd",)),
    "04": ("the weight analysis", ("weights",)),
    "05": ("mask rate and the ablations", ("mask-rate", "frozen", "corpus")),
}
VERDICT_INPUTS = ("table1", "table2", "static")  # the results files the verdicts read
BUILD_VERSION = 1  # bump when what a build keeps changes


@dataclass
class Committed:
    """What `committed_results` found for one section (also what it displays)."""

    section: str
    profile: str | None
    markdown: str  # the text shown (escaped when displayed)
    verdicts: object = None  # DataFrame of the section's claims, or None
    tables: dict = field(default_factory=dict)  # experiment -> compact DataFrame
    figure: Path | None = None


def section_of(name: str) -> str:
    """'01', '1', '01_teacher_masking' or an experiment name ('table2') -> the section key of SECTIONS."""
    key = str(name).split("_", 1)[0].zfill(2) if str(name)[:1].isdigit() else None
    if key in SECTIONS:
        return key
    for k, (_, exps) in SECTIONS.items():
        if name in exps:
            return k
    raise ValueError(f"no paper section {name!r}; choose one of {', '.join(SECTIONS)} (notebooks 01-05)")


def records_of(profile: str) -> Path | None:
    """docs/records/<profile>/, when it holds a records manifest."""
    d = RECORDS_DIR / profile
    return d if (d / runs.RECORDS_MANIFEST).is_file() else None


def _has_students(rec: Path | None) -> bool:
    """Whether a records folder holds a finished student (not only the teacher and its scores)."""
    if rec is None:
        return False
    man = json.loads((rec / runs.RECORDS_MANIFEST).read_text())
    return any(str(r).startswith("pretrain/") for r in man.get("runs", []))


def _key(rec: Path) -> str:
    """What a build depends on: the records (manifest, every file's path and size) and entmask's own source."""
    h = hashlib.sha256(f"v{BUILD_VERSION}".encode())
    h.update((rec / runs.RECORDS_MANIFEST).read_bytes())
    for p in sorted(rec.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(rec)}:{p.stat().st_size}\n".encode())
    for p in sorted((REPO / "entmask").rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _scratch(rec: Path) -> str | None:
    """Where the records are imported for a build: /dev/shm when it is a writable folder with room for four times
    the records (Linux's memory-backed tmpfs), else the system's temporary folder (None). A build writes and then
    deletes ~2,000 small files; on a disk mounted with online discard (the project's AVX2 host) deleting them alone
    took 9 of cpu-long's 30 s."""
    shm = "/dev/shm"
    try:
        if not (os.path.isdir(shm) and os.access(shm, os.W_OK)):
            return None
        need = 4 * sum(p.stat().st_size for p in rec.rglob("*") if p.is_file())
        return shm if shutil.disk_usage(shm).free > need else None
    except OSError:
        return None


def _own_rows(res, name: str) -> list[str]:
    """Labels of the rows of an experiment's report that are its own: not its reference row (random for most),
    and, for an experiment outside VERDICT_INPUTS, not a row it shares with them (kd's self-masking row is
    Table 2's)."""
    from entmask.experiments import get, reference_row

    sc = res.extra.get("scores")
    if sc is None or not len(sc):
        return []
    shared = set() if name in VERDICT_INPUTS else {r for n in VERDICT_INPUTS for r in get(n).rows}
    labels = [str(x) for x in sc[sc["source"] == "ours"]["label"]]
    return [x for x in labels if reference_row(name, x) is not None and x not in shared]


def build(profile: str, root=None, rebuild: bool = False) -> Path | None:
    """The cached report of `profile`'s committed records (built now if missing or stale); None without records."""
    rec = records_of(profile)
    if rec is None:
        return None
    out = runs.cache_dir(root) / "committed" / f"{profile}-{_key(rec)}"
    if (out / "build.json").is_file() and not rebuild:
        return out
    from entmask import config, experiments, records
    from entmask.experiments.plots import figures_off

    t0 = time.perf_counter()
    pre, ft, n_pre, n_ft = seeds_of(rec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    status: dict = {}
    with tempfile.TemporaryDirectory(prefix="entmask-committed-", dir=_scratch(rec)) as tmp:
        said = io.StringIO()
        # the report-only "not finished: ..." lines are kept as notes below; the experiments' own figures are not
        # drawn (a build keeps text and the verdict figures drawn at its end)
        with contextlib.redirect_stdout(said), figures_off():
            records.import_records(rec, root=tmp)
            cfg = config.resolve(profile, {"experiment.pretrain_seeds": pre or [0], "finetune.seeds": ft or [0]})
            names = [n for _, (_, exps) in sorted(SECTIONS.items()) for n in exps]
            for name in dict.fromkeys(list(VERDICT_INPUTS) + names):
                try:
                    res = experiments.EXPERIMENTS[name](cfg, root=tmp, progress=False, train=False)
                    status[name] = {"rows": _own_rows(res, name)}
                except Exception as e:  # noqa: BLE001 - a section that cannot be built from records says why
                    status[name] = {"error": str(e).replace(tmp, "<records>").splitlines()[0][:300]}
            from entmask.experiments.specs import expected_hashes

            want = expected_hashes(dict.fromkeys(list(VERDICT_INPUTS) + names), cfg, pre or [0])
            off = off_table(rec, want, cfg, pre or [0])
            vtable = None
            if any("rows" in status.get(n, {}) for n in VERDICT_INPUTS):
                vtable = experiments.verdicts(cfg, root=tmp, progress=False).table
        for line in said.getvalue().splitlines():
            m = re.match(r"entmask experiment: ([\w-]+): not finished: (.+?): seed", line)
            if m and m.group(1) in status:
                status[m.group(1)].setdefault("left_out", []).append(m.group(2))
        results = runs.results_dir(profile, tmp)
        for p in results.glob("*"):
            if p.suffix in (".csv", ".json", ".md"):
                (tmp_out / p.name).write_text(p.read_text().replace(tmp, "<records>"))
        if vtable is not None:
            from entmask.experiments import plot_verdicts

            for key in SECTIONS:
                sub = vtable[vtable["claim"].isin(_claim_ids(key))].reset_index(drop=True)
                if len(sub) and sub["pooled Δ"].map(lambda d: isinstance(d, (int, float)) and d == d).any():
                    plot_verdicts(sub, tmp_out / f"verdicts-{key}")  # only a figure with an estimate in it
    runs.write_json(tmp_out / "build.json", {
        "profile": profile, "records": str(rec.relative_to(REPO)), "pretrain_seeds": pre, "finetune_seeds": ft,
        "pretrain_runs": n_pre, "finetune_runs": n_ft, "experiments": status, "off_table": off,
        "seconds": round(time.perf_counter() - t0, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S")})
    try:
        os.replace(tmp_out, out)  # atomic; another notebook that built it first wins, this copy goes
    except OSError:
        shutil.rmtree(tmp_out, ignore_errors=True)
    return out


# ---- what a section shows -------------------------------------------------------------------------------------
_KEEP = ("model", "strategy", "source", "Total", "Δ Total", "95% CI (bootstrap)", "held-out acc", "plateau")


def _compact(csv: Path, first: bool):
    """Our rows, the majority row and (for the section's first table) the paper's rows of the same strategies; the
    task columns that hold a score, the Total and its Δ."""
    import pandas as pd

    from entmask.experiments import TASK_LABEL, TASK_ORDER

    t = pd.read_csv(csv, dtype=str).fillna("")
    ours = t[t["source"] == "ours"]
    tasks = [TASK_LABEL[k] for k in TASK_ORDER if TASK_LABEL[k] in t.columns
             and (ours[TASK_LABEL[k]].str.strip().ne("absent") & ours[TASK_LABEL[k]].ne("")).any()]
    keep = t["source"].isin(["ours", "majority"])
    if first:
        base = t["strategy"].str.replace(r" \[.*\]$", "", regex=True)
        keep |= (t["source"] == "paper") & base.isin(set(ours["strategy"]))
    blimp = tuple(c for c in ("BLiMP", "Δ BLiMP") if c in t.columns and ours[c].str.strip().ne("").any())
    cols = [c for c in _KEEP[:3] + tuple(tasks) + _KEEP[3:6] + blimp + _KEEP[6:] if c in t.columns]
    return t.loc[keep, cols].reset_index(drop=True)


def _verdict_lines(vt) -> list[str]:
    out = []
    for r in vt.to_dict("records"):
        d, ci, v = r.get("pooled Δ"), r.get("pooled 95% CI"), r.get("pooled verdict") or "unresolved"
        words = str(r.get("paper (§)") or r.get("claim"))
        if isinstance(d, (int, float)) and d == d:
            line = f"- {words}: Δ Total {d:+.2f} {ci}, **{v}**"
            ex = str(r.get("excludes") or "").strip()
            if ex and ex != "nan":
                line += f"; {ex.replace('excludes ', 'the data exclude ', 1)}"
        else:
            line = f"- {words}: **{v}** ({r.get('pooled why') or r.get('why') or 'no estimate'})"
        out.append(line + ".")
    return out


def _claim_ids(key: str) -> list[str]:
    """The ids of the paper's claims that a section's experiments judge (none for 03-05)."""
    from entmask.experiments import CLAIMS

    return [c[0] for c in CLAIMS if c[3] in SECTIONS[key][1]]


def _section_verdicts(key: str, built: Path):
    """The rows of a build's verdicts.csv for the section's claims (a DataFrame), or None without the file."""
    import pandas as pd

    vcsv = built / "verdicts.csv"
    if not (_claim_ids(key) and vcsv.is_file()):
        return None
    v = pd.read_csv(vcsv)
    return v[v["claim"].isin(_claim_ids(key))].reset_index(drop=True)


def _also_committed(key: str, profile: str, built: Path) -> str:
    """An older decisive profile's pooled verdicts on the section's claims (those it could estimate), shown under
    the newest profile's: a newer matrix that has finished only some rows (cpu-wiki's first students, no
    self-masking yet) hides nothing an older test bed judged, and where both judged a claim the reader sees both."""
    import pandas as pd

    vt = _section_verdicts(key, built)
    if vt is None:
        return ""
    vt = vt[pd.to_numeric(vt["pooled Δ"], errors="coerce").notna()]
    if not len(vt):
        return ""
    info, doc = json.loads((built / "build.json").read_text()), _results_doc(profile)
    return "\n".join(["", f"**Also committed: `{profile}`** (pretraining seeds {info['pretrain_seeds']} x fine-tuning "
                      f"seeds {info['finetune_seeds']}" + (f"; `{doc}`" if doc else "") + "), its pooled verdicts:",
                      "", *_verdict_lines(vt), ""])


def _results_doc(profile: str) -> str | None:
    p = REPO / "docs" / f"results-{profile}.md"
    return f"docs/results-{profile}.md" if p.is_file() else None


def _why_none(s: dict, profile: str) -> str:
    """Why an experiment has no table from the committed records, in a few words."""
    if "error" in s:
        if "safetensors" in s["error"]:
            return "no report from the committed records: it reads the models' weights, which records leave out"
        if "has not finished" in s["error"] or "not started" in s["error"]:
            return f"none of its runs was committed at `{profile}`"
        return f"no report from the committed records ({s['error'][:160]})"
    return f"none of its own rows was run at `{profile}`"


def _section_text(key: str, profile: str, built: Path) -> tuple[str, dict, object, Path | None]:
    """The markdown of one section, its compact tables, its claims and its figure."""
    from entmask.notebook_results import to_markdown

    info = json.loads((built / "build.json").read_text())
    title, exps = SECTIONS[key]
    st = info["experiments"]
    doc = _results_doc(profile)
    lines = [f"## What the committed results say: {title}", "",
             f"Profile `{profile}`: {info['pretrain_runs']} pretraining and {info['finetune_runs']} fine-tuning runs "
             f"committed under `{info['records']}/` (pretraining seeds {info['pretrain_seeds']} x fine-tuning seeds "
             f"{info['finetune_seeds']}), read here without training anything." + off_note(info.get("off_table"))
             + (f" The full write-up: `{doc}`." if doc else ""), ""]
    vt = _section_verdicts(key, built)
    if vt is not None:
        lines += ["**The paper's claims**, judged by one pooled mixed model over every committed row (Δ of the GLUE "
                  "Total in points, 95% CI; `entmask experiment verdicts`):", ""] + _verdict_lines(vt) + [""]
    tables, first = {}, True
    for name in exps:
        s = st.get(name, {})
        if s.get("rows") and (built / f"{name}.csv").is_file():
            tables[name] = t = _compact(built / f"{name}.csv", first)
            n_units = len(info["pretrain_seeds"]) * len(info["finetune_seeds"])
            lines += [f"**`{name}`** (mean ± s.d. over up to {n_units} runs per row):", "", to_markdown(t, index=False)]
            if s.get("left_out"):
                lines += [f"Left out of this table (not finished at every seed; the pooled model above still uses "
                          f"their finished runs): {', '.join(dict.fromkeys(s['left_out']))}.", ""]
            first = False
        else:
            lines += [f"`{name}`: {_why_none(s, profile)}.", ""]
    if tables:
        lines += ["Notes: cells are the paper's metric x 100 on the validation split; Total is the mean over the tasks "
                  "with data here (QQP and MNLI are absent offline, so it is not the paper's 7-task Total); † a "
                  "collapsed classifier (>= 95% of its predictions on one class); Δ Total is against random, with a "
                  "bootstrap CI that leaves out pretraining-seed noise at one seed and is too narrow at two (the "
                  "verdicts use the pooled model); BLiMP (where scored) is zero-shot accuracy, %; held-out acc is "
                  "under random masks, which a strategy-masked student never trained on, so it is no plateau test. "
                  f"Every note and the per-seed tables: `{built / next(iter(tables))}.md`"
                  + (f"; the discussion: `{doc}`." if doc else "."), ""]
    fig = built / f"verdicts-{key}.png"
    return "\n".join(lines), tables, vt, fig if fig.is_file() else None


def committed_results(section: str, profile: str | None = None, root=None, show: bool = True,
                      rebuild: bool = False) -> Committed:
    """Show what the committed records say for notebook `section` ('01'-'05', a notebook name, or an experiment):
    the claims with the effect sizes they exclude, the table beside the paper's rows, the verdict figure. `profile`
    None: the first of DECISIVE_PROFILES with rows of its own for this section, followed by the pooled verdicts of
    any older one with rows ("Also committed"). Trains nothing; see the module docstring."""
    key = section_of(section)
    title, exps = SECTIONS[key]
    candidates = [profile] if profile else [p for p in DECISIVE_PROFILES if _has_students(records_of(p))]
    chosen, found = None, []  # found: every candidate's build with rows of its own for this section
    for p in candidates:
        built = build(p, root, rebuild)
        if built is None:
            continue
        st = json.loads((built / "build.json").read_text())["experiments"]
        if any(st.get(n, {}).get("rows") for n in exps):
            found.append((p, built))
        if chosen is None or (found and found[0][0] == p):
            chosen = (p, built)
        if found and not _claim_ids(key):  # no claims (03-05): nothing an older profile could add
            break
    if chosen is None:
        where = f"docs/records/{profile}/" if profile else f"docs/records/ ({', '.join(DECISIVE_PROFILES)})"
        out = Committed(key, profile, f"No committed records for {title}: nothing under {where}.")
    else:
        text, tables, vt, fig = _section_text(key, *chosen)
        text += "".join(_also_committed(key, *f) for f in found if f[0] != chosen[0])
        older = [(q, b / f"verdicts-{key}.png") for q, b in found if q != chosen[0]]
        q, old_fig = next(((q, f) for q, f in older if f.is_file()), (None, None))
        if fig is None and old_fig is not None:  # no estimate at the chosen profile yet: an older profile's figure
            fig = old_fig
            text += f"\n\nThe figure is `{q}`'s: none of this section's claims has an estimate at `{chosen[0]}` yet."
        if not tables and vt is None:  # one line: what is there, and why not for this section
            st = json.loads((chosen[1] / "build.json").read_text())["experiments"]
            ran = ", ".join(n for n in VERDICT_INPUTS if st.get(n, {}).get("rows"))
            text = (f"No committed records for {title} at `{chosen[0]}` (its committed matrix ran {ran}): "
                    + "; ".join(f"`{n}`: {_why_none(st.get(n, {}), chosen[0])}" for n in exps) + ".")
            fig = None
        out = Committed(key, chosen[0], text, vt, tables, fig)
    if show:
        _display(out)
    return out


def _display(c: Committed) -> None:
    from IPython.display import Image, display

    from entmask.notebook_results import markdown_html

    display({"text/html": markdown_html(c.markdown), "text/plain": c.markdown}, raw=True)
    if c.figure is not None:
        display(Image(filename=str(c.figure)))


__all__ = ["DECISIVE_PROFILES", "SECTIONS", "Committed", "build", "committed_results", "records_of", "section_of"]
