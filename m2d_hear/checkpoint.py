"""Reading every released M2D weight format, and ours, into an encoder.

Formats (all may or may not carry ``norm_stats``):

- full training checkpoints ``{'model': state_dict, 'args': argparse.Namespace, 'optimizer', ...}`` whose state
  also holds the predictor (``decoder_*``, ``mask_token``) and target (``target_*``) weights, which are dropped;
- encoder-only state dicts (``*_enconly``);
- EVAR fine-tuned state dicts (``module.ar.runtime.backbone.*`` plus ``module.head.*``);
- runtime-wrapped state dicts (``backbone.*``);
- M2D-CLAP checkpoints (the audio encoder plus ``audio_proj.*``; text-side keys are dropped);
- ``.safetensors`` files holding any of the bare state dicts above.

The configuration comes from the folder name (see :mod:`m2d_hear.config`); the tensors are checked against it.

Reading never runs code of the file's choosing unless asked to: ``.pth`` files are read with
``torch.load(weights_only=True)`` admitting tensors, plain containers and :data:`SAFE_CLASSES` only. A file that
needs more is refused (:class:`UnsafeCheckpointError`) unless ``trust_checkpoint=True`` (``--trust-checkpoint`` on
the command lines); a file that is not in a ``torch.save`` format at all (e.g. a plain pickle) is refused without
being unpickled, trusted or not. Tensors holding NaN/inf (encoder weights, ``norm_stats``, the CLAP projector) are
refused at load time, naming the file and the first bad tensor.
"""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import io
import pathlib
import pickle
import pickletools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ConfigNameError, ModelConfig, config_for_file
from .errors import InputError
from .hub import resolve_weights
from .vit import DEFAULT_NORM_STATS, ViTEncoder, ViTSize, size_from_model_name

EVAR_PREFIX = "module.ar.runtime.backbone."
RUNTIME_PREFIX = "backbone."
HEAD_PREFIX = "module.head."


SAFE_CLASSES = [argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath, pathlib.PureWindowsPath]


def safe_load(path: str | Path, map_location="cpu", **kwargs):
    """``torch.load`` of tensors, plain containers and :data:`SAFE_CLASSES` only (no code of the file's choosing)."""
    with torch.serialization.safe_globals(SAFE_CLASSES):
        return torch.load(path, map_location=map_location, weights_only=True, **kwargs)


class UnsafeLoadWarning(UserWarning):
    """A weight file was read with full unpickling (``torch.load(weights_only=False)``) because the caller trusted
    it (``trust_checkpoint=True``) and it holds more than tensors, containers and :data:`SAFE_CLASSES`."""


class CheckpointError(InputError):
    """A weight file that cannot be read, or whose tensors do not fit its configuration."""


class UnsafeCheckpointError(CheckpointError):
    """A weight file that only full unpickling (which can run code) could read, refused without trust."""


@dataclass
class Checkpoint:
    """The encoder-relevant content of one weight file."""

    path: Path
    config: ModelConfig
    encoder_state: dict[str, torch.Tensor]
    projector_state: dict[str, torch.Tensor] = field(default_factory=dict)
    head_state: dict[str, torch.Tensor] = field(default_factory=dict)
    args: object | None = None
    has_norm_stats: bool = True
    dropped: list[str] = field(default_factory=list)

    @property
    def embed_dim(self) -> int:
        return self.encoder_state["pos_embed"].shape[-1]

    @property
    def vit_size(self) -> ViTSize:
        depth = 1 + max((int(k.split(".")[1]) for k in self.encoder_state if k.startswith("blocks.")), default=-1)
        dim = self.embed_dim
        hidden = self.encoder_state["blocks.0.mlp.fc1.weight"].shape[0] if depth else 4 * dim
        named = size_from_model_name(self.config.model_cls)
        heads = named.num_heads if named and named.embed_dim == dim else max(1, dim // 64)
        return ViTSize(dim, depth, heads, hidden / dim)


TRUST_HINT = ("if you trust the file, pass trust_checkpoint=True (command line: --trust-checkpoint), or re-export "
              "its encoder once with `m2d-pretrain export --trust-checkpoint` to get a file that loads safely")

_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("m2d_trust_checkpoints", default=False)


@contextlib.contextmanager
def trusted_checkpoints():
    """Within this block every weight file is read as if ``trust_checkpoint=True`` were passed; for third-party
    runners that call ``m2d_hear.load_model(path)`` without options (``m2d-eval validate --trust-checkpoint``)."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


# The first pickle of torch.save's legacy (non-zip) format is this number (torch.serialization.MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def torch_file_format(path: Path) -> str | None:
    """``'zip'`` or ``'legacy'`` for the two ``torch.save`` formats, else None; decided from the first bytes
    without unpickling anything (:mod:`pickletools` only decodes opcodes)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    try:
        ops = []
        for op, arg, _ in pickletools.genops(io.BytesIO(head)):
            ops.append((op.name, arg))
            if op.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - not a pickle, or a first pickle longer than 64 bytes: not the magic
        return None
    values = [arg for name, arg in ops if name not in ("PROTO", "FRAME", "STOP")]
    return "legacy" if values == [_LEGACY_MAGIC] and ops[-1][0] == "STOP" else None


def refused_detail(err: Exception, otherwise: str = "objects") -> str:
    """What :func:`safe_load` refused, from its message (``GLOBAL module.name`` when it says), else ``otherwise``."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return f"the object {found.group(1)}" if found else otherwise


def read_weight_file(path: str | Path, trust_checkpoint: bool = False) -> dict:
    """Load a ``.pth``/``.pt``/``.ckpt`` or ``.safetensors`` file to a dict, with one clear error on failure.

    ``.pth`` files are read with ``torch.load(weights_only=True)`` (tensors, plain containers, argparse.Namespace
    and paths). A file that needs more is refused with :class:`UnsafeCheckpointError` unless ``trust_checkpoint``
    (or :func:`trusted_checkpoints`); then it is read with full unpickling, which can run the file's code, and an
    :class:`UnsafeLoadWarning` says so. A file in neither ``torch.save`` format is never unpickled.
    """
    path = Path(path)
    trust_checkpoint = trust_checkpoint or _TRUSTED.get()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weight file; check the path, or pass a released checkpoint name "
                              "(`m2d-eval weights list`)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # noqa: BLE001 - re-raised with the file name and a fix
            raise CheckpointError(f"{path}: not a readable safetensors file ({err}); re-download or re-export it")
    if torch_file_format(path) is None:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither torch.save's zip nor its legacy format; "
                              "a plain pickle is never unpickled, since that could run code): re-download it, or "
                              "save the state dict with torch.save or safetensors")
    try:
        # Full checkpoints pickle their run arguments as an argparse.Namespace, whose values may include paths;
        # allow those classes (building them runs no code of the file's choosing) and nothing else.
        obj = safe_load(path)
    except pickle.UnpicklingError as safe_err:  # the restricted unpickler met something it does not admit
        detail = refused_detail(safe_err)
        if not trust_checkpoint:
            raise UnsafeCheckpointError(
                f"{path}: refused: it holds {detail} beyond tensors, plain containers, argparse.Namespace and "
                f"paths, and unpickling it could run code of the file's choosing; {TRUST_HINT}") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
                                  f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); "
                                  "the file may be truncated: re-download it") from None
        warnings.warn(f"{path}: trusted and read with full unpickling (it holds {detail} beyond tensors and "
                      "argparse.Namespace); re-export the encoder with `m2d-pretrain export --trust-checkpoint` "
                      "to get a file that loads without trust", UnsafeLoadWarning, stacklevel=2)
    except Exception as err:  # noqa: BLE001 - truncated or damaged archives
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {first}); "
                              "the file may be truncated: re-download it") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict or a {{'model': ...}} checkpoint, got {type(obj).__name__}")
    return obj


def split_state(raw: dict) -> tuple[dict, dict, dict, object | None, list[str]]:
    """Normalise key prefixes; return (encoder, projector, head, args, dropped keys)."""
    args = raw.get("args")
    state = raw["model"] if isinstance(raw.get("model"), dict) else raw
    if any(k.startswith(RUNTIME_PREFIX) for k in state):
        state = {k[len(RUNTIME_PREFIX):]: v for k, v in state.items() if k.startswith(RUNTIME_PREFIX)}
    state = {k.replace(EVAR_PREFIX, ""): v for k, v in state.items()}
    encoder, projector, head, dropped = {}, {}, {}, []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            dropped.append(key)
        elif key in ("cls_token", "pos_embed", "norm_stats") or re.match(r"^(patch_embed|blocks|norm)\.", key):
            encoder[key] = value
        elif key.startswith("audio_proj."):
            projector[key] = value
        elif key.startswith(HEAD_PREFIX):
            head[key[len(HEAD_PREFIX):]] = value
        else:  # decoder_*, target_*, mask_token, offline_predictor, text side, EVAR front-end buffers ...
            dropped.append(key)
    return encoder, projector, head, args, dropped


def read_checkpoint(path: str | Path, config: str | ModelConfig | None = None,
                    trust_checkpoint: bool = False) -> Checkpoint:
    """Read and validate a weight file; ``config`` overrides the folder-name configuration (renamed files);
    ``trust_checkpoint`` admits files that need full unpickling (see :func:`read_weight_file`).

    ``path`` may also be a released checkpoint name (``NAME`` or ``NAME/FILE``, see :mod:`m2d_hear.hub`)."""
    path = resolve_weights(path)
    try:
        cfg = config_for_file(path, config)
    except ConfigNameError as err:
        raise CheckpointError(str(err)) from None
    encoder, projector, head, args, dropped = split_state(read_weight_file(path, trust_checkpoint))
    has_stats = "norm_stats" in encoder
    if not has_stats:
        encoder["norm_stats"] = torch.tensor(DEFAULT_NORM_STATS)
    ckpt = Checkpoint(path, cfg, encoder, projector, head, args, has_stats, dropped)
    check_shapes(ckpt)
    check_finite(ckpt)
    return ckpt


def check_finite(ckpt: Checkpoint) -> None:
    """Refuse NaN/inf in the tensors that make embeddings (encoder, ``norm_stats``, CLAP projector), naming the
    first bad one, and a ``norm_stats`` standard deviation that is not positive."""
    for key, value in {**ckpt.encoder_state, **ckpt.projector_state}.items():
        if value.is_floating_point() or value.is_complex():
            finite = torch.isfinite(value)
            if not finite.all():
                bad = int((~finite).sum())
                raise CheckpointError(
                    f"{ckpt.path}: tensor {key} holds {bad} NaN/inf value(s) of {value.numel()}; the file is "
                    "damaged or its training diverged: re-download it or use an earlier checkpoint")
    std = float(ckpt.encoder_state["norm_stats"][1])
    if not std > 0:
        raise CheckpointError(f"{ckpt.path}: tensor norm_stats has standard deviation {std:g} (must be positive); "
                              "the file is damaged: re-download it or recompute the statistics")


def expected_shapes(cfg: ModelConfig, dim: int) -> dict[str, tuple[int, ...]]:
    n_freq, n_time = cfg.grid_size
    return {
        "patch_embed.proj.weight": (dim, 1, *cfg.patch_size),
        "pos_embed": (1, 1 + n_freq * n_time, dim),
        "cls_token": (1, 1, dim),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm_stats": (2,),
    }


def check_shapes(ckpt: Checkpoint) -> None:
    state, cfg, name = ckpt.encoder_state, ckpt.config, ckpt.path
    missing = [k for k in ("pos_embed", "cls_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                           "norm.weight") if k not in state]
    if missing:
        raise CheckpointError(f"{name}: not an M2D encoder checkpoint: missing {', '.join(missing)} "
                              f"(found {len(state)} encoder tensors, {len(ckpt.dropped)} other keys)")
    dim = ckpt.embed_dim
    for key, shape in expected_shapes(cfg, dim).items():
        if key in state and tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{name}: {key} has shape {tuple(state[key].shape)} but configuration "
                f"{cfg.folder_name('*')} (input {cfg.input_size[0]}x{cfg.input_size[1]}, patch "
                f"{cfg.patch_size[0]}x{cfg.patch_size[1]}) needs {shape}; fix the folder name or pass config=...")


def build_encoder_from(ckpt: Checkpoint) -> ViTEncoder:
    size = ckpt.vit_size
    encoder = ViTEncoder(ckpt.config.input_size, ckpt.config.patch_size, size.embed_dim, size.depth,
                         size.num_heads, size.mlp_ratio)
    state = {k: v.float() for k, v in ckpt.encoder_state.items()}
    try:
        result = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches inside the blocks
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise CheckpointError(f"{ckpt.path}: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        problems = [f"missing {result.missing_keys[:4]}"] if result.missing_keys else []
        problems += [f"unexpected {result.unexpected_keys[:4]}"] if result.unexpected_keys else []
        raise CheckpointError(f"{ckpt.path}: encoder tensors do not match a {size.depth}-block, {size.embed_dim}-d "
                              f"ViT: {'; '.join(problems)}")
    return encoder
