"""Where the project's default model lives.

The default is a small M2D pre-trained by our own ``m2d-pretrain`` (see ``results/default_model/``), shipped
inside the package under ``m2d_hear/weights/<official-style folder name>/``. ``M2D_DEFAULT_WEIGHTS`` overrides it.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

WEIGHTS_DIR = Path(__file__).parent / "weights"
ENV_VAR = "M2D_DEFAULT_WEIGHTS"


def default_weight_file() -> Path:
    """The default weight file: ``$M2D_DEFAULT_WEIGHTS`` if set, else the one shipped in ``m2d_hear/weights``
    (several files there are an :class:`~m2d_hear.errors.InputError`, not a silent choice)."""
    if os.environ.get(ENV_VAR):  # a path, or a released checkpoint name (m2d_hear.hub)
        from .hub import resolve_weights

        return resolve_weights(os.environ[ENV_VAR])
    found = sorted(WEIGHTS_DIR.glob("*/*.pth")) + sorted(WEIGHTS_DIR.glob("*/*.safetensors"))
    if not found:
        raise FileNotFoundError(
            f"no default M2D weights under {WEIGHTS_DIR}; pass a weight file path, or set {ENV_VAR}")
    if len(found) > 1:  # e.g. a stale export left beside the shipped file: never pick one silently
        names = ", ".join(str(f.relative_to(WEIGHTS_DIR)) for f in found)
        raise InputError(f"{WEIGHTS_DIR}: {len(found)} weight files ({names}), the default must be one; "
                         f"remove the stale ones, or name one with {ENV_VAR}")
    return found[0]
