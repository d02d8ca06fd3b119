import pytest
import torch

from ui3d.teachers.text import BOS, EOS, PAD, TextEncoder, TextEncoderConfig, WordTokenizer
from ui3d.world.captions import vocabulary


def test_split_lowercases_and_splits_commas():
    assert WordTokenizer.split("  A Red  CUBE,side view. ") == ["a", "red", "cube", ",", "side", "view"]
    assert WordTokenizer.split("") == []


def test_encode_decode_round_trip_and_padding():
    tok = WordTokenizer.builtin(max_length=12)
    ids = tok(["a glossy red cube, side view", ""])
    assert ids.shape == (2, 12) and ids.dtype == torch.long
    assert ids[0, 0] == BOS and ids[0, 8] == EOS and (ids[0, 9:] == PAD).all()
    assert ids[1].tolist()[:3] == [BOS, EOS, PAD]
    assert tok.decode(ids)[0] == "a glossy red cube, side view"
    # every word of the world's vocabulary has its own id
    every = [tok.ids[w] for w in vocabulary()]
    assert len(set(every)) == len(vocabulary())


def test_unknown_word_is_named_not_guessed():
    tok = WordTokenizer.builtin()
    with pytest.raises(ValueError) as err:
        tok(["a ceramic giraffe"])
    msg = str(err.value)
    assert "'giraffe'" in msg and "owl" in msg and "\n" not in msg
    assert tok.unknown_words("a red zebra on a blue plate") == ["zebra", "on", "plate"]


def test_too_long_prompt_is_an_error():
    tok = WordTokenizer(["a", "b"], max_length=4)
    tok(["a b"])
    with pytest.raises(ValueError, match="at most 2"):
        tok(["a b a"])


def test_serialisation_round_trip():
    tok = WordTokenizer.builtin()
    again = WordTokenizer.from_dict(tok.to_dict())
    assert again.words == tok.words and torch.equal(again(["a red owl"]), tok(["a red owl"]))
    with pytest.raises(ValueError):
        WordTokenizer.from_dict({"vocab": []})


def test_text_encoder_pooled_position_sees_the_whole_caption():
    torch.manual_seed(0)
    tok = WordTokenizer.builtin()
    enc = TextEncoder(TextEncoderConfig(vocab_size=len(tok), max_length=tok.max_length, dim=16, layers=1, heads=2))
    h = enc(tok(["a red cube", "a red cone", "a red cube"]))
    assert h.shape == (3, tok.max_length, 16)
    assert torch.allclose(h[0], h[2])
    # position 0 (the pooled embedding) changes with the last word through attention
    assert (h[0, 0] - h[1, 0]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="token ids"):
        enc(torch.zeros(2, 5, dtype=torch.long))


def test_a_prompt_the_tokenizer_cannot_read_is_a_user_error_that_echoes_it_cut():
    from ui3d.errors import UserError

    tok = WordTokenizer.builtin()
    with pytest.raises(UserError) as err:
        tok(["a red giraffe" + ", a red cube" * 10_000])
    msg = str(err.value)
    assert "'giraffe'" in msg and "characters)" in msg and len(msg) < 2000
    with pytest.raises(UserError, match="at most 10"):
        tok(["a red cube " * 20])
