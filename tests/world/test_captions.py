import pytest
import torch

from ui3d.prompt import VIEWS, view_ids, view_suffix, view_suffixes, with_view_suffix
from ui3d.world.captions import make_caption, parse_prompt, vocabulary
from ui3d.world.objects import OBJECTS
from ui3d.world.palette import COLOURS, MATERIALS


def test_builtin_prompts_parse():
    p = parse_prompt("a ceramic owl")
    assert (p.object, p.material, p.colour, p.view, p.text) == (
        "owl",
        "ceramic",
        "glaze",
        None,
        "a ceramic owl",
    )
    p = parse_prompt("A Red Cube, side view.")
    assert (p.object, p.colour, p.material, p.view) == ("cube", "red", "matte", "side view")
    assert p.caption == "a red cube, side view"
    p = parse_prompt("a purple owl")
    assert (p.object, p.colour) == ("owl", "purple")
    p = parse_prompt("  the glossy grey   mug back view ")
    assert (p.object, p.colour, p.material, p.view, p.text) == (
        "mug",
        "gray",
        "glossy",
        "back view",
        "a glossy gray mug",
    )
    assert parse_prompt("owl").colour == "brown"  # the object's default colour
    assert parse_prompt("a glossy tree").colour == "green"


@pytest.mark.parametrize(
    "text, names",
    [
        ("a ceramic dragon", "'dragon'"),
        ("hello world", "'hello'"),
        ("a red cube!", "'cube!'"),
        ("a cube, top view", "'top'"),
    ],
)
def test_unknown_words_are_named_and_the_vocabulary_listed(text, names):
    with pytest.raises(ValueError) as err:
        parse_prompt(text)
    msg = str(err.value)
    assert names in msg and "\n" not in msg
    for word in list(OBJECTS) + list(COLOURS) + list(MATERIALS):
        assert word in msg


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("   .", "empty"),
        ("a red", "no object"),
        ("a cube owl", "one object"),
        ("a red blue cube", "one colour"),
        ("a matte glossy cube", "one material"),
        ("a cube red", "must come last"),
    ],
)
def test_malformed_prompts_raise_value_error(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_prompt(text)
    with pytest.raises(ValueError, match="expected a string"):
        parse_prompt(None)  # type: ignore[arg-type]


def test_make_caption_articles_and_round_trip():
    assert make_caption("owl") == "an owl"
    assert make_caption("cube", "orange") == "an orange cube"
    assert make_caption("owl", material="ceramic") == "a ceramic owl"
    assert make_caption("cube", "red", view="side view") == "a red cube, side view"
    assert make_caption("torus", "gray", "glossy") == "a glossy gray torus"
    for obj in OBJECTS:
        for colour in (None, "pink"):
            for material in (None, "ceramic"):
                text = make_caption(obj, colour, material, "back view")
                p = parse_prompt(text)
                assert (p.object, p.view, p.caption) == (obj, "back view", text)
                assert set(text.replace(",", " , ").split()) <= set(vocabulary())
    with pytest.raises(ValueError, match="dragon"):
        make_caption("dragon")
    with pytest.raises(ValueError, match="colour"):
        make_caption("cube", "teal")


def test_view_suffix_thresholds_and_wrapping():
    cases = {
        (0, 0): "front view",
        (45, 10): "front view",
        (-45, 10): "front view",
        (46, 10): "side view",
        (-90, 10): "side view",
        (134, 0): "side view",
        (135, 0): "back view",
        (-135, 0): "back view",
        (180, 0): "back view",
        (-180, 0): "back view",
        (350, 0): "front view",
        (-190, 0): "back view",
        (0, 61): "overhead view",
        (180, 60): "back view",
    }
    for (az, el), expected in cases.items():
        assert view_suffix(az, el) == expected, (az, el)
    az = torch.tensor([a for a, _ in cases], dtype=torch.float32)
    el = torch.tensor([e for _, e in cases], dtype=torch.float32)
    assert view_suffixes(az, el) == list(cases.values())
    assert view_ids(az, el).tolist() == [VIEWS.index(v) for v in cases.values()]
    assert with_view_suffix("a red cube.", "side view") == "a red cube, side view"
    with pytest.raises(ValueError, match="view"):
        with_view_suffix("a red cube", "top view")


def test_a_prompt_the_world_cannot_read_is_a_user_error_that_echoes_it_cut():
    from ui3d.errors import UserError

    huge = "a red" + " cube" * 20_000  # 100 kB
    with pytest.raises(UserError) as err:
        parse_prompt(huge)
    msg = str(err.value)
    assert len(msg) < 2000 and "(100007 characters)" in msg and "one object per prompt" in msg and "\n" not in msg
    with pytest.raises(UserError, match=r"unknown word 'x{199}… \(1002 characters\);"):
        parse_prompt("x" * 1000)  # one 1000-letter word: cut too (its repr has quotes)
