"""The ViT encoder and positional table, checked against an independent explicit implementation."""
import math

import numpy as np
import torch

from m2d_hear.pos_embed import sincos_2d
from m2d_hear.vit import ViTEncoder


def test_sincos_layout_time_first_half_frequency_second_half():
    table = sincos_2d(16, (5, 38))[0]
    assert table.shape == (1 + 5 * 38, 16)
    assert torch.all(table[0] == 0)  # CLS row
    tok = lambda f, t: table[1 + f * 38 + t]  # noqa: E731 - frequency-major token index
    assert torch.equal(tok(0, 3)[:8], tok(4, 3)[:8])  # first half depends on time only
    assert torch.equal(tok(2, 0)[8:], tok(2, 37)[8:])  # second half depends on frequency only
    # sin(t * omega_0) with omega_0 = 1 for the first entry, cos for the entry at dim/4
    assert math.isclose(tok(0, 3)[0].item(), math.sin(3.0), rel_tol=1e-6)
    assert math.isclose(tok(2, 0)[8 + 4].item(), math.cos(2.0), rel_tol=1e-6)


def explicit_forward(state: dict, lms: torch.Tensor, heads: int, patch: tuple[int, int]) -> torch.Tensor:
    """A from-scratch reference: explicit softmax attention, eps 1e-6 LayerNorms, frequency-major tokens."""
    x = torch.nn.functional.conv2d(lms, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=patch)
    b, d, nf, nt = x.shape
    tokens = [x[:, :, f, t] for f in range(nf) for t in range(nt)]  # n = f * T' + t
    x = torch.stack(tokens, dim=1)
    pos = state["pos_embed"][:, 1:].reshape(1, nf, -1, d)[:, :, :nt].reshape(1, nf * nt, d)
    x = torch.cat([state["cls_token"].expand(b, -1, -1) + state["pos_embed"][:, :1], x + pos], dim=1)

    def ln(v, p):
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        return (v - mu) / torch.sqrt(var + 1e-6) * state[p + ".weight"] + state[p + ".bias"]

    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        p = f"blocks.{i}"
        h = ln(x, f"{p}.norm1") @ state[f"{p}.attn.qkv.weight"].T + state[f"{p}.attn.qkv.bias"]
        q, k, v = h.reshape(b, -1, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        h = (att @ v).transpose(1, 2).reshape(b, -1, d)
        x = x + h @ state[f"{p}.attn.proj.weight"].T + state[f"{p}.attn.proj.bias"]
        h = ln(x, f"{p}.norm2") @ state[f"{p}.mlp.fc1.weight"].T + state[f"{p}.mlp.fc1.bias"]
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        x = x + h @ state[f"{p}.mlp.fc2.weight"].T + state[f"{p}.mlp.fc2.bias"]
    return ln(x, "norm")[:, 1:]


def test_encoder_matches_explicit_reference_full_and_short_inputs():
    torch.manual_seed(0)
    enc = ViTEncoder((80, 64), (16, 16), embed_dim=64, depth=2, num_heads=4).eval()
    enc.init_weights()
    with torch.no_grad():
        for p in enc.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    state = enc.state_dict()
    for width in (64, 32, 16):
        lms = torch.randn(2, 1, 80, width)
        with torch.no_grad():
            ours = enc(lms)
        ref = explicit_forward(state, lms, heads=4, patch=(16, 16))
        assert ours.shape == (2, 5 * width // 16, 64)
        assert (ours - ref).abs().max().item() < 1e-4


def test_encoder_rejects_too_wide_input():
    enc = ViTEncoder((80, 32), (16, 16), embed_dim=64, depth=1, num_heads=1)
    try:
        enc(torch.zeros(1, 1, 80, 64))
    except ValueError as err:
        assert "trained grid" in str(err)
    else:
        raise AssertionError("an input wider than the positional table must fail clearly")


def test_resize_pos_embed_keeps_frequency_rows_and_truncates():
    enc = ViTEncoder((80, 64), (16, 16), embed_dim=64, depth=1, num_heads=1)
    before = enc.pos_embed.detach().clone()
    enc.resize_pos_embed(32)
    assert enc.pos_embed.shape == (1, 1 + 5 * 2, 64)
    assert torch.equal(enc.pos_embed[0, 1:3], before[0, 1:3])  # f=0, t=0..1 kept
    enc.resize_pos_embed(128)
    assert enc.pos_embed.shape == (1, 1 + 5 * 8, 64) and enc.grid_size == (5, 8)
    assert np.isfinite(enc.pos_embed.detach().numpy()).all()
