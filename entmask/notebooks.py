"""The notebooks' face: every name the numbered notebooks, `entmask reproduce` and the tests use, re-exported from
the modules that define them, so `from entmask import notebooks; notebooks.setup(...)` is all a notebook imports.

What it is (each module says what it is and is not):
    notebook_setup      setup: each notebook's settings cell (config, runs folder, device, versions, progress)
    committed_results   committed_results: what the committed records of the decisive profile say for a notebook's
                        section (claims, excluded effect sizes, the table beside the paper's, the verdict figure);
                        live_label: the line that says whether the live runs after it are evidence or a demonstration
    notebook_results    record, experiment_metrics, show_report / markdown_html, show_figures, save_figure,
                        save_table, to_markdown: keeping and showing a notebook's own results
    notebook_run        NOTEBOOKS, select, reproduce, export_html, ensure_kernel, summary_table: executing the
                        notebooks with papermill (`entmask reproduce`), and how to run one by hand

What it is not: no logic of its own. Constants are copies: to swap the notebook list (tests), patch
entmask.notebook_run.NOTEBOOKS / NOTEBOOK_DIR, which `select` and `reproduce` read.
"""
from __future__ import annotations

from entmask.committed_results import (  # noqa: F401
    DECISIVE_PROFILES, SECTIONS, Committed, committed_results, records_of, section_of,
)
from entmask.notebook_results import (  # noqa: F401
    HEADLINE_MAX, _is_number, _leaves, brief_report, experiment_metrics, live_label, markdown_html, record,
    results_path, save_figure, save_table, show_figures, show_report, to_markdown, tokenizer_of,
)
from entmask.notebook_run import (  # noqa: F401
    GPU_PROFILES, KERNEL_NAME, NOTEBOOK_DIR, NOTEBOOKS, REPO, NotebookError, _environ, _execute, _finish_output,
    _first_line, _interrupted, _read_headline, _write_summary, ensure_kernel, export_html, notebook_path,
    output_dir, read_record, reproduce, select, summary_table,
)
from entmask.notebook_setup import (
    PARAMETER_KEYS, Setup, pick_device, pick_workers, set_progress, setup, use_runs_dir, versions,
)

__all__ = ["NOTEBOOKS", "NOTEBOOK_DIR", "KERNEL_NAME", "GPU_PROFILES", "NotebookError", "select", "reproduce",
           "record", "read_record", "experiment_metrics", "show_figures", "show_report", "markdown_html", "export_html",
           "ensure_kernel", "setup", "Setup", "PARAMETER_KEYS", "versions", "use_runs_dir", "set_progress",
           "pick_device", "pick_workers", "save_figure", "save_table", "to_markdown", "results_path", "summary_table",
           "output_dir",
           "tokenizer_of", "committed_results", "live_label", "Committed", "DECISIVE_PROFILES", "SECTIONS",
           "records_of", "section_of", "notebook_path", "HEADLINE_MAX", "brief_report"]
