"""systems/teacher_cost.py: its "shipped" row is the shipped teacher's network, and it times a forward."""

from systems.teacher_cost import CANDIDATES, SHIPPED, forward_seconds
from ui3d.teachers.builtin import BuiltinTeacher, BuiltinTeacherConfig, BuiltinTeacherModel


def test_the_shipped_row_is_the_shipped_network_and_the_others_differ():
    assert BuiltinTeacher.load().model.config == SHIPPED
    assert len(set(CANDIDATES.values())) == len(CANDIDATES)


def test_a_forward_is_timed():
    tiny = BuiltinTeacherModel(BuiltinTeacherConfig(resolution=8, channels=(8, 8), norm_groups=4, camera_dim=7))
    assert forward_seconds(tiny, repeats=2) > 0
