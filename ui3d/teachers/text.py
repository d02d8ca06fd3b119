"""Word-level tokenizer and a small text encoder for the built-in teacher.

The tokenizer knows exactly the words of the built-in world's captions
(:func:`ui3d.world.captions.vocabulary`) plus three special tokens. Text is lower-cased, a trailing
period dropped and commas split off as their own token. A word outside the vocabulary is an error
that names the word and lists what the world knows — it is never mapped to an "unknown" token,
so a prompt like "a ceramic giraffe" cannot silently turn into "a ceramic".

The empty string is the unconditional prompt of classifier-free guidance: ``[<bos>, <eos>, <pad>...]``.

The encoder is a token embedding + learned positions + a small pre-norm transformer, giving
``[B, max_length, dim]`` hidden states like CLIP's last hidden state in Stable Diffusion. Position
0 (``<bos>``) attends to the whole caption and doubles as the pooled embedding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ui3d.errors import UserError, clip

__all__ = ["SPECIAL_TOKENS", "WordTokenizer", "TextEncoderConfig", "TextEncoder"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
PAD, BOS, EOS = 0, 1, 2
_SPLIT = re.compile(r"\s*,\s*|\s+")


class WordTokenizer:
    """Maps captions to fixed-length id tensors; a prompt with an unknown word raises ``UserError``."""

    def __init__(self, words: Sequence[str], max_length: int = 12):
        words = [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]
        if not words:
            raise ValueError("WordTokenizer: expected a non-empty word list")
        if max_length < 3:
            raise ValueError(f"WordTokenizer: max_length must be >= 3, got {max_length}")
        self.words: tuple[str, ...] = SPECIAL_TOKENS + tuple(words)
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.max_length = int(max_length)

    @staticmethod
    def builtin(max_length: int = 12) -> "WordTokenizer":
        """The tokenizer of the built-in world's caption vocabulary."""
        from ui3d.world.captions import vocabulary

        return WordTokenizer(vocabulary(), max_length)

    def __len__(self) -> int:
        return len(self.words)

    @staticmethod
    def split(text: str) -> list[str]:
        """``"A red cube, side view."`` -> ``["a", "red", "cube", ",", "side", "view"]``."""
        clean = " ".join(str(text).strip().lower().split()).rstrip(".").strip()
        out: list[str] = []
        for i, part in enumerate(clean.split(",")):
            if i > 0:
                out.append(",")
            out.extend(w for w in _SPLIT.split(part.strip()) if w)
        return out

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in self.split(text) if w not in self.ids]

    def _known_message(self) -> str:
        try:
            from ui3d.world.captions import known_words_message

            return known_words_message()
        except ImportError:  # pragma: no cover - the world is part of ui3d
            return "known words: " + ", ".join(self.words[len(SPECIAL_TOKENS):])

    def check(self, text: str) -> None:
        """Raise a one-line ``UserError`` naming the first unknown word or an over-long prompt."""
        if not isinstance(text, str):  # a caller's bug: every prompt a user gives is a string
            raise ValueError(f"prompt: expected a string, got {type(text).__name__}")
        unknown = self.unknown_words(text)
        if unknown:
            raise UserError(
                f"prompt {clip(repr(text))}: unknown word {clip(repr(unknown[0]))} (the built-in teacher has no "
                f"token for it); {self._known_message()}"
            )
        n = len(self.split(text)) + 2
        if n > self.max_length:
            raise UserError(
                f"prompt {clip(repr(text))}: {n - 2} words, the built-in teacher reads at most {self.max_length - 2}"
            )

    def encode(self, text: str) -> list[int]:
        self.check(text)
        ids = [BOS] + [self.ids[w] for w in self.split(text)] + [EOS]
        return ids + [PAD] * (self.max_length - len(ids))

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Token ids ``[B, max_length]`` (long)."""
        if isinstance(texts, str):
            texts = [texts]
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.long).reshape(-1, self.max_length)

    def decode(self, ids: Tensor) -> list[str]:
        out = []
        for row in ids.reshape(-1, ids.shape[-1]).tolist():
            words = [self.words[i] for i in row if i >= len(SPECIAL_TOKENS)]
            out.append(" ".join(words).replace(" ,", ","))
        return out

    def to_dict(self) -> dict:
        return {"words": list(self.words[len(SPECIAL_TOKENS):]), "max_length": self.max_length}

    @staticmethod
    def from_dict(data: dict) -> "WordTokenizer":
        if not isinstance(data, dict) or not isinstance(data.get("words"), list):
            raise ValueError("tokenizer data: expected {'words': [...], 'max_length': n}")
        return WordTokenizer([str(w) for w in data["words"]], int(data.get("max_length", 12)))


@dataclass(frozen=True)
class TextEncoderConfig:
    vocab_size: int = 40
    max_length: int = 12
    dim: int = 64
    layers: int = 2
    heads: int = 4


class TextEncoder(nn.Module):
    """Token ids [B, L] -> hidden states [B, L, dim] (position 0 is the pooled embedding)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.token = nn.Embedding(config.vocab_size, config.dim)
        self.position = nn.Parameter(torch.zeros(config.max_length, config.dim))
        nn.init.normal_(self.token.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.dim, config.heads, 4 * config.dim, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.ndim != 2 or ids.shape[1] != self.config.max_length:
            raise ValueError(f"token ids: expected [B, {self.config.max_length}], got {tuple(ids.shape)}")
        h = self.token(ids) + self.position[None]
        h = self.layers(h, src_key_padding_mask=ids == PAD)
        return self.norm(h)
