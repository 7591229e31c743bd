"""The offline benchmark tasks' old address: :mod:`pet_kit.datasets` holds them.

Kept so that code written as ``from pet_kit.io.datasets import load_task`` keeps working.
"""

from ..datasets import (
    DataPackageMissingError,
    TaskInfo,
    UnknownTaskError,
    data_available,
    fetch_task_data,
    list_tasks,
    load_task,
    sample_k_shot,
    task_info,
    unlabeled_texts,
)

__all__ = [
    "DataPackageMissingError",
    "TaskInfo",
    "UnknownTaskError",
    "data_available",
    "fetch_task_data",
    "list_tasks",
    "load_task",
    "sample_k_shot",
    "task_info",
    "unlabeled_texts",
]
