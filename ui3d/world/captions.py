"""Captions of the built-in world: a small grammar, its parser and its generator.

Grammar (case-insensitive, a trailing period is ignored)::

    prompt   := [article] [material] [colour] object [[","] view]
    article  := "a" | "an" | "the"
    material := "matte" | "glossy" | "ceramic"
    colour   := "red" | "orange" | ... (see ui3d.world.palette.COLOURS; "grey" = "gray")
    object   := "sphere" | "cube" | ... | "owl" | ... (see ui3d.world.objects.OBJECTS)
    view     := "front view" | "side view" | "back view" | "overhead view"

Generated captions use the canonical form ``a|an [material] [colour] object[, view]``. Every colour
goes with every object. A material without a colour takes the material's default colour (ceramic:
an off-white glaze), otherwise the object's default colour; no material means matte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ui3d.errors import UserError, clip
from ui3d.prompt.views import VIEWS
from ui3d.world.objects import OBJECTS, WorldObject, get_shape, make_object
from ui3d.world.palette import COLOURS, DEFAULT_MATERIAL, MATERIALS

__all__ = [
    "WorldPrompt",
    "ARTICLES",
    "COLOUR_ALIASES",
    "parse_prompt",
    "make_caption",
    "vocabulary",
    "known_words_message",
]

ARTICLES = ("a", "an", "the")
COLOUR_ALIASES = {"grey": "gray"}
_VIEW_RE = re.compile(r"^(?P<body>.*?)(?:\s*,\s*|\s+)(?P<view>front|side|back|overhead)\s+view$")
_VIEW_WORDS = tuple(v.split()[0] for v in VIEWS)


@dataclass(frozen=True)
class WorldPrompt:
    """A parsed prompt. ``colour`` and ``material`` are resolved (never None); ``text`` is the
    canonical caption without the view; ``view`` is a phrase of :data:`ui3d.prompt.VIEWS` or None."""

    object: str
    colour: str
    material: str
    view: str | None
    text: str

    @property
    def caption(self) -> str:
        """``text`` with the view suffix, when there is one."""
        return f"{self.text}, {self.view}" if self.view else self.text

    def to_object(self) -> WorldObject:
        return make_object(self.object, self.colour, self.material)


def vocabulary() -> tuple[str, ...]:
    """Every word a caption can contain (for building a tokenizer), plus the comma."""
    words = list(ARTICLES) + list(MATERIALS) + list(COLOURS) + list(COLOUR_ALIASES) + list(OBJECTS)
    words += list(_VIEW_WORDS) + ["view", ","]
    return tuple(dict.fromkeys(words))


def known_words_message() -> str:
    return (
        f"the built-in world knows objects: {', '.join(OBJECTS)}; colours: {', '.join(COLOURS)}; "
        f"materials: {', '.join(MATERIALS)}; views: {', '.join(VIEWS)} "
        "(prompt form: 'a [material] [colour] object[, view]', e.g. 'a ceramic owl', 'a red cube, side view')"
    )


def _error(text: str, problem: str) -> UserError:
    """A prompt the built-in world cannot read; a long prompt is echoed cut (a 100 kB one stays one line)."""
    return UserError(f"prompt {clip(repr(text))}: {problem}; {known_words_message()}")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def make_caption(
    object: str, colour: str | None = None, material: str | None = None, view: str | None = None
) -> str:
    """Canonical caption, e.g. ``make_caption("owl", material="ceramic") == "a ceramic owl"`` and
    ``make_caption("cube", "red", view="side view") == "a red cube, side view"``."""
    get_shape(object)  # validates the object name
    words = []
    if material is not None:
        if material not in MATERIALS:
            raise ValueError(
                f"material: unknown material {material!r}; known materials: {', '.join(MATERIALS)}"
            )
        words.append(material)
    if colour is not None:
        colour = COLOUR_ALIASES.get(colour, colour)
        if colour not in COLOURS:
            raise ValueError(f"colour: unknown colour word {colour!r}; known colours: {', '.join(COLOURS)}")
        words.append(colour)
    words.append(object)
    text = f"{_article(words[0])} {' '.join(words)}"
    if view is not None:
        if view not in VIEWS:
            raise ValueError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
        text = f"{text}, {view}"
    return text


def parse_prompt(text: str) -> WorldPrompt:
    """Parse a built-in-world prompt (see the module docstring). A prompt the world cannot read raises
    a one-line :class:`~ui3d.errors.UserError` naming the offending word and listing what the world knows."""
    if not isinstance(text, str):  # a caller's bug: every prompt a user gives is a string
        raise ValueError(f"prompt: expected a string, got {type(text).__name__}; {known_words_message()}")
    clean = " ".join(text.strip().lower().split()).rstrip(".").strip()
    if not clean:
        raise _error(text, "the prompt is empty")
    view = None
    m = _VIEW_RE.match(clean)
    if m:
        clean, view = m.group("body").strip(), f"{m.group('view')} view"
    tokens = [t for t in re.split(r"[\s,]+", clean) if t]
    if tokens and tokens[0] in ARTICLES:
        tokens = tokens[1:]
    objects, colours, materials = [], [], []
    for tok in tokens:
        word = COLOUR_ALIASES.get(tok, tok)
        if word in OBJECTS:
            objects.append(word)
        elif word in COLOURS:
            colours.append(word)
        elif word in MATERIALS:
            materials.append(word)
        elif tok in ARTICLES:
            raise _error(text, f"the article {tok!r} must come first")
        elif tok in _VIEW_WORDS or tok == "view":
            raise _error(
                text, f"the view word {tok!r} must end the prompt as ', <front|side|back|overhead> view'"
            )
        else:
            raise _error(text, f"unknown word {clip(repr(tok))}")
    if not objects:
        raise _error(text, "no object word")
    if len(objects) > 1:
        raise _error(text, f"one object per prompt, got {clip(', '.join(objects))}")
    if len(colours) > 1:
        raise _error(text, f"one colour per prompt, got {clip(', '.join(colours))}")
    if len(materials) > 1:
        raise _error(text, f"one material per prompt, got {clip(', '.join(materials))}")
    if tokens[-1] != objects[0] and COLOUR_ALIASES.get(tokens[-1], tokens[-1]) != objects[0]:
        raise _error(
            text, f"the object {objects[0]!r} must come last (before the view), got {tokens[-1]!r} after it"
        )
    colour_word = colours[0] if colours else None
    material_word = materials[0] if materials else None
    obj = make_object(objects[0], colour_word, material_word)
    return WorldPrompt(
        object=obj.name,
        colour=obj.colour,
        material=obj.material or DEFAULT_MATERIAL,
        view=view,
        text=make_caption(obj.name, colour_word, material_word),
    )
