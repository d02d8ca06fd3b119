import pytest
import torch

from ui3d.prompt.embeddings import encode_prompt


class CountingEncoder:
    """A deterministic text 'encoder': embedding = hash-seeded noise; counts the texts it encodes."""

    def __init__(self):
        self.seen: list[str] = []
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.seen += list(texts)
        self.calls.append(list(texts))
        return torch.stack([torch.randn(3, 4, generator=torch.Generator().manual_seed(sum(map(ord, t)))) for t in texts])


def test_views_and_negative_and_camera_lookup():
    enc = CountingEncoder()
    emb = encode_prompt(enc, "a ceramic owl", "model-a", negative_prompt="blurry")
    assert emb.views.shape == (4, 3, 4) and emb.negative.shape == (1, 3, 4)
    assert enc.seen == ["a ceramic owl, front view", "a ceramic owl, side view", "a ceramic owl, back view",
                        "a ceramic owl, overhead view", "blurry"]
    cond, uncond = emb.for_cameras(torch.tensor([0.0, 90.0, 180.0, 10.0]), torch.tensor([10.0, 10.0, 10.0, 80.0]))
    for i, view in enumerate([0, 1, 2, 3]):
        torch.testing.assert_close(cond[i], emb.views[view])
    torch.testing.assert_close(uncond, emb.negative.expand(4, 3, 4))
    # Perp-Neg: front cameras are pushed away from the back view, every other view from the front view
    neg = emb.perp_negatives(torch.tensor([0.0, 90.0, 180.0, 10.0]), torch.tensor([10.0, 10.0, 10.0, 80.0]))
    for i, view in enumerate([2, 0, 0, 0]):
        torch.testing.assert_close(neg[i], emb.views[view])


def _encoded(enc):
    """Texts the encoder really encoded (not the fingerprint probe, the empty prompt alone)."""
    return [t for call in enc.calls if call != [""] for t in call]


class RetrainedEncoder(CountingEncoder):
    """The same model name with other weights."""

    def __call__(self, texts):
        return super().__call__(texts) + 1.0


def test_disk_cache_is_keyed_by_model_and_prompt_and_survives_corruption(tmp_path):
    enc = CountingEncoder()
    first = encode_prompt(enc, "a red cube", "model-a", cache_dir=tmp_path)
    assert len(_encoded(enc)) == 5
    again = encode_prompt(enc, "a red cube", "model-a", cache_dir=tmp_path)
    assert len(_encoded(enc)) == 5  # all from the cache
    torch.testing.assert_close(again.views, first.views)
    encode_prompt(enc, "a red cube", "model-b", cache_dir=tmp_path)
    assert len(_encoded(enc)) == 10  # another model: encoded again
    files = sorted(tmp_path.iterdir())
    files[0].write_bytes(b"not safetensors")
    encode_prompt(enc, "a red cube", "model-a", cache_dir=tmp_path)
    encode_prompt(enc, "a red cube", "model-b", cache_dir=tmp_path)
    assert len(_encoded(enc)) == 11  # only the corrupt entry was encoded again


def test_a_retrained_encoder_under_the_same_name_never_reads_stale_embeddings(tmp_path):
    old = encode_prompt(CountingEncoder(), "a red cube", "builtin", cache_dir=tmp_path)
    retrained = RetrainedEncoder()
    new = encode_prompt(retrained, "a red cube", "builtin", cache_dir=tmp_path)
    assert len(_encoded(retrained)) == 5
    torch.testing.assert_close(new.views, old.views + 1.0)


def test_empty_prompt_and_view_independent():
    with pytest.raises(ValueError, match="prompt is empty"):
        encode_prompt(CountingEncoder(), "  ", "m")
    enc = CountingEncoder()
    emb = encode_prompt(enc, "a mug", "m", view_dependent=False)
    torch.testing.assert_close(emb.views[0], emb.views[2])
    assert enc.seen == ["a mug", ""]


def test_the_cache_lives_in_the_users_cache_folder_never_the_current_one(tmp_path, monkeypatch):
    from ui3d.prompt.embeddings import prompt_cache_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UI3D_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert prompt_cache_dir() == tmp_path / "home" / ".cache" / "ui3d" / "prompts"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: only absolute paths count
    assert prompt_cache_dir() == tmp_path / "home" / ".cache" / "ui3d" / "prompts"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert prompt_cache_dir() == tmp_path / "xdg" / "ui3d" / "prompts"
    monkeypatch.setenv("UI3D_CACHE_DIR", str(tmp_path / "env"))
    assert prompt_cache_dir() == tmp_path / "env" / "prompts"
    assert prompt_cache_dir(tmp_path / "flag") == tmp_path / "flag" / "prompts"  # --cache-dir wins
    encode_prompt(CountingEncoder(), "a red cube", "m", cache_dir=prompt_cache_dir())
    assert len(list((tmp_path / "env" / "prompts").iterdir())) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]  # nothing in the current folder


def test_a_cache_folder_that_cannot_be_written_is_skipped(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    enc = CountingEncoder()
    emb = encode_prompt(enc, "a red cube", "m", cache_dir=blocked / "prompts")
    assert emb.views.shape == (4, 3, 4) and len(_encoded(enc)) == 5  # encoded, and the run goes on
    assert blocked.read_text().startswith("a file")
