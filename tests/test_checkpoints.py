"""Every official weight layout loads, gives the same embeddings, and bad files fail with one clear message."""
import pytest
import torch

from m2d_hear import CheckpointError, load_m2d, load_model, read_checkpoint
from m2d_hear.config import ConfigNameError, parse_config_name
from tests.fixtures import checkpoints as ck

NAME = "m2d_vit_base-80x608p16x16-221006-mr7"


def test_parse_official_names():
    cfg = parse_config_name("m2d_as_vit_base-80x1001p16x16p32k-240413_AS-FT_enconly")
    assert (cfg.input_size, cfg.patch_size, cfg.sr, cfg.sample_rate) == ((80, 1001), (16, 16), "32k", 32000)
    cfg = parse_config_name("m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025")
    assert cfg.sr == "16k" and cfg.extra == ("B", "TI")
    assert parse_config_name("m2d_s_vit_base-80x608p80x2-230301").grid_size == (1, 304)
    assert parse_config_name(cfg.folder_name("x")).extra == ("B", "TI")
    for bad in ("weights", "m2d_vit_base-80x608-x", "m2d_vit_base-80x608p16x16p44k-x"):
        with pytest.raises(ConfigNameError):
            parse_config_name(bad)


def _embed(model, seconds=2.0, seed=0):
    audio = torch.rand(2, int(seconds * model.sample_rate), generator=torch.Generator().manual_seed(seed)) - 0.5
    with torch.no_grad():
        return model.encode(audio)


def test_all_formats_give_identical_embeddings(tmp_path):
    paths = {
        "full": ck.write_full_checkpoint(tmp_path / "a", NAME),
        "enconly": ck.write_encoder_only(tmp_path / "b", NAME),
        "runtime": ck.write_runtime_wrapped(tmp_path / "c", NAME),
        "evar": ck.write_evar_finetuned(tmp_path / "d", NAME, flat=False),
        "clap": ck.write_clap(tmp_path / "e", NAME),
    }
    reference = _embed(load_m2d(paths["enconly"]))
    assert reference.shape == (2, 13, 5 * ck.TINY.embed_dim)
    for kind, path in paths.items():
        model = load_m2d(path)
        assert model.norm_stats == pytest.approx((-6.0, 3.5)), kind
        assert torch.equal(_embed(model), reference), kind


def test_full_checkpoint_drops_predictor_and_target(tmp_path):
    ckpt = read_checkpoint(ck.write_full_checkpoint(tmp_path, NAME))
    assert not any(k.startswith(("decoder", "target", "mask_token")) for k in ckpt.encoder_state)
    assert any(k.startswith("target_blocks.") for k in ckpt.dropped)
    assert ckpt.args.epochs == 300  # the argparse.Namespace survives the safe loader
    # the online encoder is loaded, never the target
    model = load_m2d(ckpt.path)
    assert torch.equal(model.encoder.blocks[0].attn.qkv.weight, ckpt.encoder_state["blocks.0.attn.qkv.weight"])


def test_missing_norm_stats_uses_fixed_default(tmp_path):
    model = load_m2d(ck.write_full_checkpoint(tmp_path, NAME, with_norm_stats=False))
    assert model.norm_stats == pytest.approx((-7.1, 4.2))
    audio = torch.rand(1, 16000) - 0.5
    lms = model.frontend(audio)
    assert torch.allclose(model.to_normalized_lms(audio), (lms + 7.1) / 4.2)


def test_evar_flat_head_switches_to_flat_features(tmp_path):
    model = load_m2d(ck.write_evar_finetuned(tmp_path, NAME, flat=True))
    assert model.flat_features and model.scene_embedding_size == ck.TINY.embed_dim
    assert _embed(model).shape == (2, 5 * 13, ck.TINY.embed_dim)  # all tokens, frequency-major per chunk
    emb, ts = model.timestamp_embeddings(torch.zeros(1, 32000))
    assert emb.shape == (1, 13, ck.TINY.embed_dim) and ts.shape == (1, 13)


@pytest.mark.parametrize("semantic", [False, True])
def test_clap_audio_projector(tmp_path, semantic):
    model = load_m2d(ck.write_clap(tmp_path, NAME, semantic=semantic))
    assert model.audio_proj is not None
    with torch.no_grad():
        out = model.clap_audio_embeddings(torch.rand(3, 16000) - 0.5)
    assert out.shape == (3, ck.TINY.embed_dim)


@pytest.mark.parametrize("name,seconds,frames,dim", [
    ("m2d_vit_base-80x608p16x16-x", 10.0, 63, 320),
    ("m2d_vit_base-80x1001p16x16-x", 10.0, 62, 320),
    ("m2d_vit_base-80x608p16x16-x", 30.0, 188, 320),
    ("m2d_vit_base-80x200p16x4-x", 10.0, 251, 320),
    ("m2d_s_vit_base-80x608p80x2-x", 10.0, 501, 64),
    ("m2d_vit_base-80x608p16x16p32k-x", 10.0, 63, 320),
])
def test_frame_counts_match_official_table(tmp_path, name, seconds, frames, dim):
    model = load_m2d(ck.write_encoder_only(tmp_path, name))
    assert _embed(model, seconds).shape == (2, frames, dim)


def test_chunks_are_independent_and_batched_like_one_by_one(tmp_path):
    model = load_m2d(ck.write_encoder_only(tmp_path, NAME))
    audio = torch.rand(3, 16000 * 13, generator=torch.Generator().manual_seed(1)) - 0.5  # 1301 frames: 2 full + 85
    with torch.no_grad():
        batched = model.encode(audio)
        lms = model.to_normalized_lms(audio)
        manual = []
        for start in (0, 608, 1216):
            chunk = lms[..., start:start + 608]
            pad = (16 - chunk.shape[-1] % 16) % 16
            tokens = model.encoder(torch.nn.functional.pad(chunk, (0, pad)))
            manual.append(tokens.reshape(3, 5, -1, 64).permute(0, 2, 1, 3).reshape(3, -1, 320))
        one_by_one = torch.cat([model.encode(a[None]) for a in audio])
    assert batched.shape == (3, 38 + 38 + 6, 320)
    assert torch.allclose(batched, torch.cat(manual, 1), atol=1e-5)
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    model.max_chunks = 1  # memory-bounded passes give the same result
    with torch.no_grad():
        assert torch.allclose(model.encode(audio), batched, atol=1e-5)


def test_config_override_for_renamed_files(tmp_path):
    path = ck.write_encoder_only(tmp_path, NAME)
    renamed = tmp_path / "renamed" / "my.pth"
    renamed.parent.mkdir()
    path.rename(renamed)
    with pytest.raises(CheckpointError, match="cannot tell the model configuration"):
        load_m2d(renamed)
    assert load_m2d(renamed, config=NAME).config.input_size == (80, 608)


def test_wrong_shapes_and_broken_files_fail_clearly(tmp_path):
    path = ck.write_encoder_only(tmp_path, NAME)
    wrong = tmp_path / "m2d_vit_base-80x1001p16x16-x" / "w.pth"
    wrong.parent.mkdir()
    wrong.write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match=r"w\.pth: pos_embed has shape \(1, 191, 64\).*needs \(1, 311, 64\)"):
        load_m2d(wrong)
    with pytest.raises(CheckpointError, match="patch_embed.proj.weight"):
        load_m2d(path, config="m2d_vit_base-80x608p16x8-x")
    state = torch.load(path)
    del state["blocks.1.mlp.fc2.bias"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="missing.*blocks.1.mlp.fc2.bias"):
        load_m2d(path)
    state["blocks.1.mlp.fc2.bias"] = torch.zeros(7)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="size mismatch"):
        load_m2d(path)
    torch.save({"something": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an M2D encoder checkpoint"):
        load_m2d(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="truncated: re-download"):
        load_m2d(path)
    with pytest.raises(CheckpointError, match="no such weight file"):
        load_m2d(tmp_path / NAME / "absent.pth")


def test_safetensors_and_fp16_files(tmp_path):
    from safetensors.torch import save_file

    state = ck.tiny_encoder_state(NAME)
    path = tmp_path / NAME / "w.safetensors"
    path.parent.mkdir()
    save_file({k: v.half() if k != "norm_stats" else v for k, v in state.items()}, str(path))
    model = load_model(str(path))
    assert model.encoder.blocks[0].attn.qkv.weight.dtype == torch.float32
    assert torch.allclose(model.encoder.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"], atol=1e-2)


class _Opaque:   # a pickled object outside the safe allowlist (tensors, containers, argparse.Namespace)
    pass


def test_full_unpickling_needs_trust_and_is_announced(tmp_path, recwarn):
    from m2d_hear.checkpoint import UnsafeCheckpointError, UnsafeLoadWarning, read_weight_file

    plain = ck.write_encoder_only(tmp_path / "a", NAME)
    read_weight_file(plain)
    read_weight_file(plain, trust_checkpoint=True)   # trust changes nothing for a file that loads safely
    assert not [w for w in recwarn if issubclass(w.category, UnsafeLoadWarning)]
    state = torch.load(plain, map_location="cpu", weights_only=True)
    odd = tmp_path / "b" / NAME / "weights.pth"
    odd.parent.mkdir(parents=True)
    torch.save({"model": state, "extra": _Opaque()}, odd)
    with pytest.raises(UnsafeCheckpointError, match=r"refused: it holds the object .*_Opaque.*--trust-checkpoint"):
        read_weight_file(odd)
    with pytest.warns(UnsafeLoadWarning, match="full unpickling"):
        assert "model" in read_weight_file(odd, trust_checkpoint=True)
