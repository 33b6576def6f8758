"""Per-task fine-tuning recipes.

Published recipes (``source='published'``) are the command lines of the official M2D scripts ``util/ft-*.sh`` (M2D
repository, TASLP 2024 / M2D-X paper set-up) with the defaults of EVAR's ``config/m2d.yaml`` and ``finetune.py``
filled in. US8K and GTZAN have no published M2D fine-tuning recipe; ours (``source='ours'``) are derived from the
ESC-50 recipe and justified in ``the README (Fine-tuning)``; tables must label them "ours".
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace

from evaluation.tasks.base import DatasetError, TaskData
from m2d_hear.errors import InputError

from .optim import OPTIMIZERS

SOURCES = ("published", "ours", "evar-defaults")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one fine-tuning run apart from the task, the weights and the seed."""

    name: str
    optimizer: str = "sgd"
    lr: float = 2.0
    epochs: int = 200
    warmup_epochs: float = 5
    batch_size: int = 128
    mixup: float = 0.5
    freq_mask: int = 30
    time_mask: int = 192
    rrc: bool = True
    token_mask: float = 0.0
    dur_frames: int | None = None
    freeze_embed: bool = False
    balanced: bool = False          # class-balanced sampling (AS2M): weighted draws without replacement
    epoch_samples: int | None = None  # samples per epoch when balanced (AS2M: 200,000)
    token_mask_variant: str = "rows_cols"
    source: str = "evar-defaults"
    reference: str = ""
    notes: str = field(default="", compare=False)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"recipe {self.name}: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.source not in SOURCES:
            raise InputError(f"recipe {self.name}: source must be one of {SOURCES}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise InputError(f"recipe {self.name}: need epochs >= 1, batch_size >= 2 and lr > 0")
        if not 0 <= self.token_mask < 1:
            raise InputError(f"recipe {self.name}: token_mask must be in [0, 1), got {self.token_mask}")

    def override(self, **changes) -> "Recipe":
        """A copy with the given (non-None) fields changed; a changed published (or EVAR-default) recipe becomes
        ``source='ours'`` with a note of what changed."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InputError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
        if not changes:
            return self
        new = replace(self, **changes)
        if new.key() != self.key() and self.source != "ours" and "source" not in changes:
            new = replace(new, source="ours", notes=f"{self.name} recipe with overrides {changes}")
        return new

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """A short hash of the settings that change training (not the name/notes)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("name", "notes", "reference", "source")}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]

    def describe(self) -> str:
        parts = [f"{self.optimizer} lr {self.lr:g}", f"{self.epochs} ep (warm-up {self.warmup_epochs:g})",
                 f"batch {self.batch_size}", f"mixup {self.mixup:g}", f"masks {self.freq_mask}/{self.time_mask}",
                 f"RRC {'on' if self.rrc else 'off'}", f"token mask {self.token_mask:g}",
                 f"dur_frames {self.dur_frames or '-'}"]
        if self.freeze_embed:
            parts.append("frozen patch embedding")
        if self.balanced:
            parts.append(f"balanced sampling ({self.epoch_samples} per epoch)")
        return f"{self.name} [{self.source}]: " + ", ".join(parts)


FT_SCRIPTS = "nttcslab/m2d util/ft-{}.sh + EVAR config/m2d.yaml (TASLP 2024 set-up)"

RECIPES: dict[str, Recipe] = {
    "as20k": Recipe("as20k", "sgd", 0.5, 200, 5, 64, 0.3, 30, 192, True, 0.5, 1001,
                    source="published", reference=FT_SCRIPTS.format("as20k")),
    "spcv2": Recipe("spcv2", "sgd", 0.5, 200, 5, 128, 0.3, 30, 48, True, 0.5, None,
                    source="published", reference=FT_SCRIPTS.format("spc")),
    "vc1": Recipe("vc1", "adamw", 5e-4, 50, 5, 64, 0.0, 30, 48, False, 0.0, 821,
                  source="published", reference=FT_SCRIPTS.format("vc1")),
    "esc50": Recipe("esc50", "sgd", 0.5, 200, 5, 128, 0.0, 15, 48, True, 0.5, 501, freeze_embed=True,
                    source="published", reference=FT_SCRIPTS.format("esc50")),
    "as2m": Recipe("as2m", "lars", 2.0, 70, 15, 64, 0.5, 30, 192, False, 0.5, 1001, balanced=True,
                   epoch_samples=200_000, source="published", reference=FT_SCRIPTS.format("as2m"),
                   notes="published runs read pre-computed log-mel .npy files; we decode waveforms"),
    # Ours: no M2D fine-tuning recipe was published for these two tasks.
    "us8k": Recipe("us8k", "sgd", 0.5, 50, 5, 128, 0.0, 15, 48, True, 0.5, 401, freeze_embed=True,
                   source="ours", reference="ESC-50 recipe, epochs 200 -> 50 for a ~5x larger training fold",
                   notes="derived from the published ESC-50 recipe; see the README (Fine-tuning)"),
    "gtzan": Recipe("gtzan", "sgd", 0.125, 200, 5, 32, 0.0, 30, 192, True, 0.5, None, freeze_embed=True,
                    source="ours", reference="ESC-50 recipe, batch 32 with linearly scaled lr, 10-s style masks",
                    notes="derived from the published ESC-50 recipe; see the README (Fine-tuning)"),
    # EVAR's config/m2d.yaml fine-tuning defaults, for tasks without a recipe (csv:/hear: sources).
    "default": Recipe("default", source="evar-defaults", reference="EVAR config/m2d.yaml fine-tuning defaults"),
}
RECIPES["gtzan_hear10fold"] = replace(RECIPES["gtzan"], name="gtzan_hear10fold")


def recipe_for(task_name: str) -> Recipe:
    """The recipe of a task name (``default`` for generic sources and unknown names)."""
    return RECIPES.get(task_name, RECIPES["default"])


def task_recipe(task: TaskData) -> Recipe:
    """A task's own recipe: the one its ``task.json`` gives (``finetune.recipe``, e.g. the mini benchmark's), else
    :func:`recipe_for` its name."""
    fields_ = task.finetune.get("recipe")
    if not fields_:
        return recipe_for(task.name)
    try:
        return Recipe(**fields_)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{task.source}: the task's finetune.recipe is not a usable recipe ({err}); fix its "
                           "task.json") from None
