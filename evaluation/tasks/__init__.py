"""Evaluation tasks read from their original download layouts (US8K, VC1, GTZAN, SPCV2, AS20K) or generic sources.

``load_task(name, data_root=None, path=None)`` returns a :class:`TaskData`; see ``evaluation.tasks.registry``.
"""
from evaluation.tasks.base import Clip, DatasetError, Round, TaskData
from evaluation.tasks.registry import TASK_NAMES, default_data_root, load_task

__all__ = ["Clip", "TaskData", "Round", "DatasetError", "load_task", "TASK_NAMES", "default_data_root"]
