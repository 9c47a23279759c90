"""Records: finished runs that outlive the machine. `export_records` copies what each finished run of a profile
measured (configs, metrics, logs, predictions; no weights) to a folder to commit; `import_records` verifies every
record of such a folder (its name's hash is its config's, it is of the kind and place the manifest says, every JSON
file has its schema) and only then copies them into the runs root, where experiments reuse them by hash.

What it is not: run folders, hashes, atomic writes and locks themselves (entmask.runs), or the JSON schemas
(entmask.schemas). It sits above config and finetune in the import graph, since checking a record's identity needs
their hashes.

This package's own module only re-exports: use `entmask.records` as before. Its modules:
    layout      the manifest, a record's place, which files of a run a record holds (both sides' rules)
    export      export_records, check_records_dest
    verify      verify_record, RecordsRefused: a record is what its manifest says, or nothing is imported
    importing   import_records: verified records copied into the runs root, nothing overwritten
    scores      the teacher's cached scores in its record, so another machine trains teacher-masked students
                without the teacher's weights
"""
from __future__ import annotations

from entmask.records.export import check_records_dest, export_records
from entmask.records.importing import import_records
from entmask.records.verify import OWN_SUFFIXES, RECORD_NAME, RecordsRefused, verify_record

# Private names of the single module this package was, kept importable from here.
from entmask.records.export import _finished_runs, _record_files, _records_lock, _replace_record  # noqa: F401
from entmask.records.importing import _import_one  # noqa: F401
from entmask.records.layout import _check_profile, _check_rel, _is_record, _left_out, _link_on_way  # noqa: F401
from entmask.records.layout import _read_manifest  # noqa: F401
from entmask.records.verify import (  # noqa: F401
    _finetune_identity,
    _forged,
    _pretrain_identity,
    _record_docs,
    _reference_identity,
    _refuse,
    _same_profile,
    _same_run,
    _verify,
)

__all__ = ["OWN_SUFFIXES", "RECORD_NAME", "RecordsRefused", "check_records_dest", "export_records", "import_records",
           "verify_record"]
