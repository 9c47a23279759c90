"""Exploration: descriptive analyses of entropies and masks that the notebooks show (00 and 02).

What it is: small, tested functions that turn per-token entropies and masks into DataFrames a notebook can plot:
    teacher_view                 the teacher's cached entropies over a seeded sample of corpus rows (EntropyView)
    token_table                  one row per maskable token: entropy, train-split frequency, wordpiece kind
    piece_kinds                  'word' | 'first' | 'continuation' for each wordpiece ('##' handling)
    frequency_bins               log-scale (decade) bins of token counts
    entropy_by_frequency / entropy_by_position / entropy_by_piece / frequency_correlation
    extreme_tokens               the highest- or lowest-entropy tokens, each shown in its context
    strategy_masks               every strategy's mask over the same rows (through `entmask.masking.select_mask`)
    jaccard / jaccard_rows / jaccard_matrix / chance_jaccard / mask_profile
    corpus_sentences             readable snippets of corpus rows (for the mask widgets)
    epoch_entropy_frame          the per-epoch entropy spread that self-masking runs record (metrics.json)
    self_mask_overlap            how a self-masking run's masks overlap the teacher's, epoch by epoch
    view_check / teacher_check   masked vs unmasked view of a model's entropies on the held-out split
    mask_fit / mask_fit_rows     a student's accuracy under each strategy's masks on train vs held-out rows
                                 (has a static-mask student memorised its training rows? "self-high": a
                                 self-masking student on the masks its own entropies pick)

What it is not: it trains nothing and selects masks only through `entmask.masking.select_mask` and scores tokens
only through `entmask.entropy` (so what it shows is what training does). No plotting: notebooks draw.
Frequencies are counts in the *train* split of the prepared corpus (special tokens excluded).

The modules, each saying what it is and is not:
    view            EntropyView, teacher_view, sample_rows, token_counts
    tables          token_table, view_table, piece_kinds, PIECE_KINDS, frequency_bins, entropy_by_*,
                    frequency_correlation
    context         detokenize, in_context, extreme_tokens, corpus_sentences
    overlap         strategy_masks, jaccard, jaccard_rows, jaccard_matrix, chance_jaccard, mask_profile
    self_masking    runs_with_epochs, epoch_entropy_frame, self_mask_overlap, self_mask_overlaps
    entropy_checks  view_check, teacher_check
    mask_fit        mask_fit, mask_fit_rows, fit_masks, own_masks, check_fit_strategies, check_max_rows,
                    student_model_dir, FIT_STRATEGIES, STATIC, SELF
"""
from __future__ import annotations

# The package re-exports every name the single-module exploration.py defined, so `from entmask import exploration;
# exploration.teacher_view(...)`, the notebooks, the tests and entmask.blimp / entmask.experiments keep working; new
# code may import from the submodules.
from entmask.exploration.view import (  # noqa: F401
    EntropyView, sample_rows, teacher_view, token_counts,
)
from entmask.exploration.tables import (  # noqa: F401
    PIECE_KINDS, _bin_label, _summary, entropy_by_frequency, entropy_by_piece, entropy_by_position, frequency_bins,
    frequency_correlation, piece_kinds, token_table, view_table,
)
from entmask.exploration.context import (  # noqa: F401
    corpus_sentences, detokenize, extreme_tokens, in_context,
)
from entmask.exploration.overlap import (  # noqa: F401
    chance_jaccard, jaccard, jaccard_matrix, jaccard_rows, mask_profile, strategy_masks,
)
from entmask.exploration.self_masking import (  # noqa: F401
    _epoch_dirs, _epoch_history, _spearman, epoch_entropy_frame, runs_with_epochs, self_mask_overlap,
    self_mask_overlaps,
)
from entmask.exploration.entropy_checks import (  # noqa: F401
    teacher_check, view_check,
)
from entmask.exploration.mask_fit import (  # noqa: F401
    FIT_STRATEGIES, SELF, STATIC, check_fit_strategies, check_max_rows, fit_masks, mask_fit, mask_fit_rows,
    own_masks, student_model_dir,
)

__all__ = ["EntropyView", "PIECE_KINDS", "sample_rows", "token_counts", "teacher_view", "piece_kinds", "token_table",
           "view_table", "frequency_bins", "entropy_by_frequency", "frequency_correlation", "entropy_by_position",
           "entropy_by_piece", "detokenize", "in_context", "extreme_tokens", "corpus_sentences", "strategy_masks",
           "jaccard", "jaccard_rows", "jaccard_matrix", "chance_jaccard", "mask_profile", "runs_with_epochs",
           "epoch_entropy_frame", "self_mask_overlap"]

__all__ += ["self_mask_overlaps"]
