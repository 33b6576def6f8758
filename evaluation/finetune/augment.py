"""Fine-tuning augmentations (training only), as used by the M2D fine-tuning recipes.

- :func:`mixup`: waveforms and label vectors mixed with a per-sample ``lambda ~ Beta(a, a)`` and a random partner.
- :func:`spec_augment`: one frequency mask and one time mask on the normalised log-mel, the same masks for the whole
  batch (torchaudio's ``FrequencyMasking``/``TimeMasking`` with ``iid_masks=False``); masked cells become 0.
- :func:`random_resized_crop`: per sample, the spectrogram is centred on a zero canvas of 1.0 x 1.5 its size
  (frequency x time), a random area of 0.6-1.5 times the input size on each axis is cut from the canvas and resized
  back bicubically.
- :func:`structured_token_mask`: M2D's structured token masking: whole frequency rows and whole time columns of the
  patch grid are dropped, about ``ratio`` of the tokens, with counts shared by the batch and positions per sample.

All randomness comes from a :class:`StepRandom`, a numpy generator for one training step that draws every per-sample
value for the *global* batch and hands each process its own slice. A step's augmentations therefore depend only on
(seed, epoch, step): a resumed run repeats an uninterrupted one, and N processes repeat one process.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class StepRandom:
    """Random draws for one training step of a global batch, sliced for this process.

    ``global_batch`` samples are split into contiguous slices; this process holds ``[offset, offset + local)``.
    """

    rng: np.random.Generator
    global_batch: int
    offset: int = 0
    local: int | None = None

    @classmethod
    def for_step(cls, seed: int, epoch: int, step: int, global_batch: int, offset: int = 0,
                 local: int | None = None, stream: int = 0) -> "StepRandom":
        rng = np.random.default_rng([int(seed), int(epoch), int(step), int(stream)])
        return cls(rng, global_batch, offset, global_batch - offset if local is None else local)

    @property
    def sl(self) -> slice:
        return slice(self.offset, self.offset + self.local)

    def per_sample(self, draw):
        """``draw(n)`` returns an array for ``n`` samples; drawn for the global batch, this process's slice kept."""
        return draw(self.global_batch)[self.sl]


# ------------------------------------------------------------------------------------------------------ mixup
def mixup_params(rand: StepRandom, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample lambdas and partner indices for the whole global batch."""
    lam = rand.rng.beta(alpha, alpha, size=rand.global_batch).astype(np.float32)
    partner = rand.rng.permutation(rand.global_batch)
    return lam, partner


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, rand: StepRandom) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix ``x`` ([B, ...], e.g. waveforms) and ``y`` ([B, C] label vectors) of the *global* batch.

    ``x`` and ``y`` hold the whole global batch (gathered from all processes when distributed); the result is this
    process's slice. ``x_i <- lam_i x_i + (1 - lam_i) x_p(i)``, and the same for ``y``, so one-hot rows still sum
    to 1. ``alpha <= 0`` returns the slice unchanged.
    """
    if alpha <= 0:
        return x[rand.sl], y[rand.sl]
    if len(x) != rand.global_batch:
        raise ValueError(f"mixup needs the global batch of {rand.global_batch}, got {len(x)}")
    lam, partner = mixup_params(rand, alpha)
    lam, partner = lam[rand.sl], partner[rand.sl]
    lam_t = torch.from_numpy(lam).to(x.device)
    idx = torch.from_numpy(partner).to(x.device)
    own = x[rand.sl]
    shape = (-1,) + (1,) * (x.dim() - 1)
    x_mix = own * lam_t.view(shape).to(x.dtype) + x[idx] * (1 - lam_t).view(shape).to(x.dtype)
    lam_y = lam_t.view(-1, 1).to(y.dtype)
    y_mix = y[rand.sl] * lam_y + y[idx] * (1 - lam_y)
    return x_mix, y_mix


# -------------------------------------------------------------------------------------------- SpecAugment
def mask_span(rng: np.random.Generator, size: int, max_width: int) -> tuple[int, int]:
    """torchaudio's rule: width ``u1 * max_width``, start ``u2 * (size - width)``; returns (start, end)."""
    width = rng.random() * max_width
    start = rng.random() * (size - width)
    return int(start), int(start) + int(width)


def spec_augment(lms: torch.Tensor, freq_mask: int, time_mask: int, rand: StepRandom) -> torch.Tensor:
    """One frequency mask (up to ``freq_mask`` bins) then one time mask (up to ``time_mask`` frames) on
    ``[B, 1, F, T]``; the same masks for every sample of the global batch; masked values are set to 0."""
    out = lms
    if freq_mask > 0:
        f0, f1 = mask_span(rand.rng, lms.shape[-2], min(freq_mask, lms.shape[-2]))
        if f1 > f0:
            out = out.clone() if out is lms else out
            out[..., f0:f1, :] = 0
    if time_mask > 0:
        t0, t1 = mask_span(rand.rng, lms.shape[-1], min(time_mask, lms.shape[-1]))
        if t1 > t0:
            out = out.clone() if out is lms else out
            out[..., t0:t1] = 0
    return out


# ------------------------------------------------------------------------------------ random resized crop
@dataclass(frozen=True)
class CropParams:
    top: int
    left: int
    height: int
    width: int


def crop_params(rng: np.random.Generator, size: tuple[int, int], canvas_scale=(1.0, 1.5),
                freq_scale=(0.6, 1.5), time_scale=(0.6, 1.5)) -> CropParams:
    """A crop area on the virtual canvas for an input of ``size`` = (F, T)."""
    src_h, src_w = size
    canvas_h, canvas_w = int(src_h * canvas_scale[0]), int(src_w * canvas_scale[1])
    h = int(np.clip(int(rng.uniform(*freq_scale) * src_h), 1, canvas_h))
    w = int(np.clip(int(rng.uniform(*time_scale) * src_w), 1, canvas_w))
    top = int(rng.integers(0, canvas_h - h + 1)) if canvas_h > h else 0
    left = int(rng.integers(0, canvas_w - w + 1)) if canvas_w > w else 0
    return CropParams(top, left, h, w)


def resized_crop_one(lms: torch.Tensor, p: CropParams, canvas_scale=(1.0, 1.5)) -> torch.Tensor:
    """``[C, F, T]``: place on the zero canvas (centred), cut ``p``, resize back to ``[C, F, T]`` bicubically."""
    c, h, w = lms.shape
    canvas_h, canvas_w = int(h * canvas_scale[0]), int(w * canvas_scale[1])
    canvas = lms.new_zeros(c, canvas_h, canvas_w)
    y0, x0 = (canvas_h - h) // 2, (canvas_w - w) // 2
    canvas[:, y0:y0 + h, x0:x0 + w] = lms
    crop = canvas[:, p.top:p.top + p.height, p.left:p.left + p.width]
    return F.interpolate(crop.unsqueeze(0), size=(h, w), mode="bicubic", align_corners=True).squeeze(0)


def random_resized_crop(lms: torch.Tensor, rand: StepRandom) -> torch.Tensor:
    """Per-sample random resized crop of ``[B, C, F, T]`` (parameters drawn for the global batch)."""
    params = [crop_params(rand.rng, tuple(lms.shape[-2:])) for _ in range(rand.global_batch)][rand.sl]
    if len(params) != len(lms):
        raise ValueError(f"random_resized_crop: {len(lms)} samples but a slice of {len(params)} parameters")
    return torch.stack([resized_crop_one(x, p) for x, p in zip(lms, params)])


# ------------------------------------------------------------------------------- structured token masking
def structured_mask_counts(rng: np.random.Generator, grid: tuple[int, int], ratio: float) -> tuple[int, int]:
    """How many frequency rows and time columns to drop (shared by the batch), M2D's rule.

    ``NF = int(F' (r + 1/F') u)`` rows (at most ``F' - 1``), then ``NT = int(T' max(r + 0.5/T' - NF/F', 0))``
    columns (at most ``T' - 1`` here, so that a token always survives).
    """
    n_f, n_t = grid
    rows = min(n_f - 1, int(n_f * (ratio + 1.0 / n_f) * rng.random()))
    cols = int(n_t * max(ratio + 0.5 / n_t - rows / n_f, 0.0))
    return rows, min(cols, n_t - 1)


def structured_token_mask(grid: tuple[int, int], ratio: float, rand: StepRandom,
                          variant: str = "rows_cols") -> torch.Tensor:
    """Indices of the tokens to *keep*, ``[local batch, K]``, ascending (frequency-major token order).

    ``variant='rows_cols'`` (default) drops the chosen rows and columns: K = (F' - NF)(T' - NT) for every sample.
    ``variant='official'`` reproduces the official code's selection, which sorts the row/column flags in
    descending order and keeps the first ``K`` (= number of unflagged tokens): it keeps the flagged rows and
    columns and fills up with unflagged tokens in index order.
    """
    if variant not in ("rows_cols", "official"):
        raise ValueError(f"unknown token-mask variant {variant!r}; use 'rows_cols' or 'official'")
    n_f, n_t = grid
    rows, cols = structured_mask_counts(rand.rng, grid, ratio)
    flags = np.zeros((rand.global_batch, n_f, n_t), dtype=bool)
    for b in range(rand.global_batch):
        flags[b, rand.rng.permutation(n_f)[:rows]] = True
    for b in range(rand.global_batch):
        flags[b, :, rand.rng.permutation(n_t)[:cols]] = True
    flags = flags[rand.sl].reshape(-1, n_f * n_t)
    n_keep = (n_f - rows) * (n_t - cols)
    if variant == "rows_cols":
        keep = np.stack([np.flatnonzero(~f) for f in flags])
    else:
        order = np.argsort(~flags, axis=1, kind="stable")  # flagged (True) first, then index order
        keep = np.sort(order[:, :n_keep], axis=1)
    return torch.from_numpy(keep.astype(np.int64))
