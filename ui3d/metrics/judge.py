"""The judge: a small classifier of world renders (object, colour, material, view) and its metrics.

It measures what a teacher (or a 3D run's renders) shows: the accuracy of its object and colour
predictions against the prompt, and the *world-FID*, the Fréchet distance
(:mod:`ui3d.metrics.fid`) between its penultimate features of two image sets. The floor of the
world-FID is that of two independent render sets of the same captions.

Images are [B, 3, 32, 32] in [-1, 1] (other sizes are resized). The shipped weights are
``assets/builtin_judge.safetensors`` (safetensors, config and class names in the metadata), trained
by ``python -m ui3d.metrics.judge OUT.safetensors`` on renders of seeds disjoint from the teacher's.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ui3d.errors import UserError, clip
from ui3d.metrics.fid import fid_from_features

__all__ = [
    "DEFAULT_JUDGE_PATH",
    "JudgeConfig",
    "JudgeNet",
    "Judge",
    "label_names",
    "object_colour_captions",
    "train_judge",
    "evaluate_teacher",
    "share_right_by",
]

DEFAULT_JUDGE_PATH = Path(__file__).resolve().parents[2] / "assets" / "builtin_judge.safetensors"
KIND = "ui3d.judge"
HEADS = ("object", "colour", "material", "view")
LOSS_WEIGHTS = {"object": 1.0, "colour": 1.0, "material": 0.5, "view": 0.5}


def label_names() -> dict[str, tuple[str, ...]]:
    """Class names of each head (colour includes the ceramic glaze)."""
    from ui3d.prompt.views import VIEWS
    from ui3d.world.objects import OBJECTS
    from ui3d.world.palette import COLOURS, MATERIALS

    return {
        "object": tuple(OBJECTS),
        "colour": tuple(COLOURS) + ("glaze",),
        "material": tuple(MATERIALS),
        "view": tuple(VIEWS),
    }


@dataclass(frozen=True)
class JudgeConfig:
    resolution: int = 32
    width: int = 32
    features: int = 128


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(), nn.AvgPool2d(2),
    )


class JudgeNet(nn.Module):
    def __init__(self, config: JudgeConfig, n_classes: dict[str, int]):
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w))
        side = config.resolution // 8
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * side * side, config.features), nn.SiLU())
        self.heads = nn.ModuleDict({k: nn.Linear(config.features, n) for k, n in n_classes.items()})

    def features(self, x: Tensor) -> Tensor:
        return self.embed(self.body(x))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


class Judge:
    """A frozen :class:`JudgeNet` with its class names."""

    def __init__(self, net: JudgeNet, names: dict[str, tuple[str, ...]], info: dict | None = None):
        self.net = net.eval().requires_grad_(False)
        self.names = names
        self.info = info or {}

    def _prep(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected [B, 3, H, W] in [-1, 1], got {tuple(images.shape)}")
        r = self.net.config.resolution
        if images.shape[-2:] != (r, r):
            images = F.interpolate(images, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        return images.float()

    @torch.no_grad()
    def features(self, images: Tensor, batch: int = 256) -> Tensor:
        return torch.cat([self.net.features(self._prep(images[i : i + batch])) for i in range(0, len(images), batch)])

    @torch.no_grad()
    def predict(self, images: Tensor, batch: int = 256, colour_words_only: bool = False) -> dict[str, list[str]]:
        """Predicted class names of every head, for images in [-1, 1]. ``colour_words_only``: pick
        the colour among the prompt colour words (not the ceramic glaze), for captions that name one."""
        out: dict[str, list[str]] = {k: [] for k in self.names}
        for i in range(0, len(images), batch):
            logits = self.net(self._prep(images[i : i + batch]))
            if colour_words_only and "glaze" in self.names["colour"]:
                logits["colour"][:, self.names["colour"].index("glaze")] = -float("inf")
            for k, names in self.names.items():
                out[k] += [names[j] for j in logits[k].argmax(1).tolist()]
        return out

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        from ui3d.io import atomic_path

        meta = {
            "kind": KIND,
            "config": json.dumps(asdict(self.net.config)),
            "names": json.dumps({k: list(v) for k, v in self.names.items()}),
            "info": json.dumps(self.info),
        }
        tensors = {k: v.detach().float().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return Path(path)

    @staticmethod
    def load(path: str | Path = DEFAULT_JUDGE_PATH) -> "Judge":
        from ui3d.io import read_safetensors

        tensors, meta = read_safetensors(path, KIND)
        try:
            config = JudgeConfig(**json.loads(meta["config"]))
            names = {k: tuple(v) for k, v in json.loads(meta["names"]).items()}
            net = JudgeNet(config, {k: len(v) for k, v in names.items()})
            net.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise UserError(f"weights file '{path}' does not hold a valid judge "
                            f"({clip(' '.join(str(err).split()))})") from None
        return Judge(net, names, json.loads(meta.get("info", "{}")))


# --- data ----------------------------------------------------------------------------------------

def _labels(prompts, names) -> dict[str, Tensor]:
    index = {k: {n: i for i, n in enumerate(v)} for k, v in names.items()}
    return {
        "object": torch.tensor([index["object"][p.object] for p in prompts]),
        "colour": torch.tensor([index["colour"][p.colour] for p in prompts]),
        "material": torch.tensor([index["material"][p.material] for p in prompts]),
        "view": torch.tensor([index["view"][p.view] for p in prompts]),
    }


JUDGE_BACKGROUNDS = ("plain", "mixed")


def _render_labelled(n: int, seed: int, resolution: int = 32, batch: int = 256, backgrounds: str = "plain"):
    """``n`` labelled renders; ``backgrounds`` "mixed": every other batch on muted backgrounds (the
    built-in teacher v2's), so the judge reads samples of either teacher."""
    from ui3d.world.dataset import WorldDataset, WorldDatasetConfig

    if backgrounds not in JUDGE_BACKGROUNDS:
        raise ValueError(f"backgrounds: expected one of {', '.join(JUDGE_BACKGROUNDS)}, got {backgrounds!r}")
    kinds = ("plain", "muted") if backgrounds == "mixed" else ("plain",)
    sets = [WorldDataset(WorldDatasetConfig(resolution=resolution, p_colour=0.85, p_material=0.4, background_kind=kind),
                         seed=seed, batch_size=batch) for kind in kinds]
    images, prompts = [], []
    for k in range((n + batch - 1) // batch):
        b = sets[k % len(sets)].batch(k)
        images.append(b.images)
        prompts += b.prompts
    return torch.cat(images)[:n], prompts[:n]


def train_judge(n_images: int = 12288, epochs: int = 10, seed: int = 1001, batch: int = 128, log=print,
                backgrounds: str = "plain") -> tuple[Judge, dict]:
    """Train on fresh renders (seed disjoint from the teacher's data); returns the judge and its
    held-out accuracy per head. Light noise/blur augmentation makes it robust to sample artefacts."""
    t0 = time.time()
    names = label_names()
    images, prompts = _render_labelled(n_images, seed, backgrounds=backgrounds)
    labels = _labels(prompts, names)
    test_images, test_prompts = _render_labelled(1024, seed + 7777, backgrounds=backgrounds)
    test_labels = _labels(test_prompts, names)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = JudgeNet(JudgeConfig(), {k: len(v) for k, v in names.items()})
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    total = epochs * (n_images // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=total, pct_start=0.15)
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(n_images, generator=gen)
        for i in range(0, n_images - batch + 1, batch):
            idx = perm[i : i + batch]
            x = images[idx]
            noise = torch.rand(batch, 1, 1, 1, generator=gen) * 0.08
            x = (x + noise * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
            out = net(x)
            # object and colour are what the judge is for; view labels are ambiguous near 45 deg
            loss = sum(LOSS_WEIGHTS[k] * F.cross_entropy(out[k], labels[k][idx]) for k in HEADS)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        log(f"judge epoch {epoch + 1}/{epochs}: loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    judge = Judge(net, names)
    pred = judge.predict(test_images)
    acc = {k: sum(p == names[k][j] for p, j in zip(pred[k], test_labels[k].tolist())) / len(test_prompts) for k in HEADS}
    judge.info = {
        "train_images": n_images, "epochs": epochs, "seed": seed, "train_seconds": round(time.time() - t0, 1),
        "backgrounds": backgrounds,
        "heldout_accuracy": {k: round(v, 4) for k, v in acc.items()},
    }
    return judge, acc


# --- evaluation of a teacher ---------------------------------------------------------------------

def object_colour_captions() -> list[tuple[str, str, str]]:
    """(caption, object, colour) for every object x colour word of the built-in world."""
    from ui3d.world.captions import make_caption
    from ui3d.world.objects import OBJECTS
    from ui3d.world.palette import COLOURS

    return [(make_caption(o, c), o, c) for o in OBJECTS for c in COLOURS]


def share_right_by(groups: Sequence[str], right: Sequence[bool]) -> dict[str, float]:
    """The share of ``right`` within each group (first-seen order), rounded to 3 decimals."""
    tally: dict[str, list[bool]] = {}
    for group, ok in zip(groups, right, strict=True):
        tally.setdefault(group, []).append(bool(ok))
    return {group: round(sum(oks) / len(oks), 3) for group, oks in tally.items()}


def evaluate_teacher(
    teacher, judge: Judge, per_caption: int = 4, steps: int = 50, cfg: float = 4.0, seed: int = 0,
    progress: bool = False, captions: Sequence[tuple[str, str, str]] | None = None, backgrounds: str = "plain",
) -> dict:
    """Judge accuracy (overall, per object, per colour) and world-FID of teacher samples over all
    object x colour captions; the renders behind world-FID on the teacher's own ``backgrounds``
    ("plain" white, or "muted" for the teacher v2)."""
    from ui3d.teachers.sampling import sample_images
    from ui3d.world.dataset import render_captions

    rows = list(captions or object_colour_captions())
    batch = [r for r in rows for _ in range(per_caption)]
    texts = [r[0] for r in batch]
    t0 = time.time()
    samples = sample_images(teacher, texts, steps=steps, cfg=cfg, generator=torch.Generator().manual_seed(seed), progress=progress) * 2 - 1
    sample_seconds = time.time() - t0
    pred = judge.predict(samples, colour_words_only=True)
    obj_ok = [p == r[1] for p, r in zip(pred["object"], batch)]
    col_ok = [p == r[2] for p, r in zip(pred["colour"], batch)]
    renders_a = render_captions(texts, seed + 1, background_kind=backgrounds)
    renders_b = render_captions(texts, seed + 2, background_kind=backgrounds)
    fa, fb, fs = judge.features(renders_a), judge.features(renders_b), judge.features(samples)
    both_ok = [a and b for a, b in zip(obj_ok, col_ok)]
    per_object = share_right_by([r[1] for r in batch], obj_ok)
    per_colour = share_right_by([r[2] for r in batch], both_ok)
    return {
        "n_samples": len(batch),
        "n_captions": len(rows),
        "steps": steps,
        "cfg": cfg,
        "object_accuracy": round(sum(obj_ok) / len(batch), 4),
        "colour_accuracy": round(sum(col_ok) / len(batch), 4),
        "both_accuracy": round(sum(both_ok) / len(batch), 4),
        "world_fid_samples_vs_renders": round(fid_from_features(fs, fa), 3),
        "world_fid_renders_vs_renders": round(fid_from_features(fb, fa), 3),
        "sampling_seconds": round(sample_seconds, 1),
        "per_object_accuracy": per_object,
        "per_colour_both_accuracy": per_colour,  # object and colour right, per colour word
        "backgrounds": backgrounds,
    }


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - the judge's training entry point
    torch.set_num_threads(1)
    argv = sys.argv[1:] if argv is None else argv
    backgrounds = "mixed" if "--mixed-backgrounds" in argv else "plain"
    argv = [a for a in argv if a != "--mixed-backgrounds"]
    out = argv[0] if argv else str(DEFAULT_JUDGE_PATH)
    judge, acc = train_judge(backgrounds=backgrounds)
    judge.save(out)
    print(f"judge -> {out}; held-out accuracy {judge.info['heldout_accuracy']}; {judge.info['train_seconds']} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
