"""entmask: entropy-aware masking for masked-language-model pretraining.

A thin library behind the notebooks: configuration (`config`), data (`data`), entropy (`entropy`), mask
selection (`masking`), models and the offline reference teacher (`models`), pretraining (`pretrain`), GLUE
fine-tuning (`finetune`), analysis (`analysis`), experiments (`experiments`), widgets (`widgets`), run folders
(`runs`) and the command line (`cli`). Import submodules directly; this package import stays light.
"""
__version__ = "0.1.0"
CONFIG_VERSION = 2  # bump when a config field's meaning changes, so old run folders are recognised as foreign
