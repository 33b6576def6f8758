"""The mini benchmark: five small tasks mirroring SPCV2, VoxCeleb1, GTZAN, UrbanSound8K and AudioSet-20K, built
from real speech engines, rendered scores and recorded sample packs, plus an unlabelled pre-training pool.

``m2d-eval mini build`` writes them; ``build(...)`` is the Python entry point. Each task is an EVAR-style CSV task
folder (``meta.csv`` + ``task.json``) for the ``csv:`` task source; its ``task.json`` also carries the benchmark's
probe and fine-tuning settings and its table note (``suite.py``), which the generic evaluation code reads.
"""
from .build import BuildReport, MiniBuildError, build, default_cache_dir, mini_task_sources, missing_requirements
from .plans import SCALES, TASK_NAMES

__all__ = ["build", "BuildReport", "MiniBuildError", "default_cache_dir", "mini_task_sources", "missing_requirements",
           "SCALES", "TASK_NAMES"]
