"""§3.5: another pretraining corpus: random and self high init pretrained on it ('NAME[:CONFIG[:SPLITS]]', default
specs.DEFAULT_OTHER_CORPUS); an unavailable corpus gives a table that says so instead of an error.

What it is: the experiment's record, its hooks and entry function. What it is not: corpus loading (data)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, Report, register
from entmask.data import mirror_name
from entmask.experiments.specs import DEFAULT_OTHER_CORPUS, parse_corpus


def _data_overrides(cfg: PretrainConfig, corpus: str | None = None, **_) -> dict:
    cname, cconf, splits = parse_corpus(corpus or DEFAULT_OTHER_CORPUS)
    return {"data.corpus": cname, "data.corpus_config": cconf, "data.splits": splits}


def _result_name(corpus: str | None = None, **_) -> str:
    """results/corpus.* for the default corpus, results/corpus-<name>.* for another, so that two corpora compared
    (gutenberg and wikipedia-good at equal words) keep a table each."""
    return "corpus" if corpus is None else f"corpus-{mirror_name(parse_corpus(corpus)[0])}"


def _report(r: Report) -> None:
    c = r.rs[0].cfg.data
    bad = [x for x in r.rs if x.error]
    if bad:
        r.header.append(f"**The corpus {c.corpus}/{c.corpus_config} {c.splits} is unavailable here**, so nothing was "
                        f"trained on it: {bad[0].error}")
    else:
        r.header.append(f"Pretraining corpus: {c.corpus}/{c.corpus_config} {c.splits} instead of "
                        f"{r.cfg.data.corpus}/{r.cfg.data.corpus_config}.")


EXPERIMENT = register(Experiment(
    name="corpus", title="Another pretraining corpus", section="§3.5",
    doc="random and self high init pretrained on another corpus (--corpus NAME[:CONFIG[:SPLITS]])",
    rows=("baseline", "self-high-init"), options=("corpus",), tolerate_data_errors=True,
    data_overrides=_data_overrides, report=_report, result_name=_result_name))


def corpus(cfg: PretrainConfig, corpus_name: str | None = None, *, root=None, progress: bool = True,
           train: bool = True) -> ExperimentResult:
    """High self-init vs baseline pretrained on another corpus ('NAME[:CONFIG[:SPLITS]]'); an unavailable corpus
    gives a table that says so instead of an error."""
    return _experiment("corpus", cfg, root=root, progress=progress, corpus_name=corpus_name, train=train)
