"""The command line itself: `ui3d --help` is fast (no torch), every option's help shows its default,
only user errors exit 2 with one line, and a bug (a plain ValueError, an ImportError) keeps its traceback."""

import errno
import subprocess
import sys

import pytest

from ui3d import cli
from ui3d.errors import UserError

PROBE = """
import sys
from ui3d.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""


def test_help_imports_no_torch():
    argvs = [["--help"], ["generate", "--help"], ["distill", "--help"], ["bench", "--help"], ["sample", "--help"]]
    done = subprocess.run([sys.executable, "-c", PROBE.format(argvs=argvs)], capture_output=True, text=True, timeout=120)
    assert "torch imported: False" in done.stderr, done.stderr
    assert "usage: ui3d [-h]" in done.stdout and "export" in done.stdout and "teacher" in done.stdout


def _subcommand_parsers(parser):
    import argparse

    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", ["generate", "distill", "sample", "bench", "export", "teacher"])
def test_every_option_shows_its_default(command):
    parsers = _subcommand_parsers(cli.build_parser([command]))
    found = [parsers[command]]
    if command == "teacher":  # its own subcommands: train, sample, eval
        found = list(_subcommand_parsers(parsers[command]).values())
    formatter = cli.HelpFormatter("ui3d")
    for parser in found:
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                text = formatter._get_help_string(action) % {"default": action.default}
                assert "default" in text, (parser.prog, action.option_strings)
    generate = parsers["generate"].format_help() if command == "generate" else ""
    if generate:
        assert "--steps STEPS         (default: from the preset)" in generate
        assert "(default: fast)" in generate  # --preset


def test_an_import_error_of_a_subcommand_is_a_bug_that_shows(monkeypatch):
    monkeypatch.setitem(cli.PLUGINS, "broken", ("ui3d.no_such_module", "add", "a subcommand whose module is missing"))
    assert "broken" in cli.build_parser(["--help"]).format_help()  # listed without importing it
    with pytest.raises(ModuleNotFoundError, match="ui3d.no_such_module"):
        cli.main(["broken"])


def _handler_raising(monkeypatch, err: BaseException):
    def handler(args):
        raise err

    monkeypatch.setattr(cli, "_configs", handler)


def test_a_user_error_is_one_line_exit_2(monkeypatch, capsys):
    _handler_raising(monkeypatch, UserError("--thing 'x': expected y\nsecond line"))
    assert cli.main(["configs"]) == 2
    assert capsys.readouterr().err == "ui3d configs: error: --thing 'x': expected y\n"


def test_a_plain_value_error_is_a_bug_with_a_traceback(monkeypatch):
    _handler_raising(monkeypatch, ValueError("a bug deep inside"))
    with pytest.raises(ValueError, match="a bug deep inside"):
        cli.main(["configs"])


def test_os_errors_the_user_caused_name_their_path(monkeypatch, capsys):
    _handler_raising(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "/read-only/run/config.yaml"))
    assert cli.main(["configs"]) == 2
    assert capsys.readouterr().err == "ui3d configs: error: Permission denied: '/read-only/run/config.yaml'\n"
    _handler_raising(monkeypatch, OSError(errno.EIO, "Input/output error", "/dev/sda"))
    with pytest.raises(OSError):  # not the user's doing
        cli.main(["configs"])
    _handler_raising(monkeypatch, FileNotFoundError("no path named"))
    with pytest.raises(FileNotFoundError):
        cli.main(["configs"])


def test_a_huge_message_is_cut_to_one_readable_line():
    line = cli.one_line(UserError("prompt '" + "x" * 100_000 + "': unknown word"))
    assert len(line) < 1100 and line.endswith("(100023 characters)")


def _handler_warning(monkeypatch, message: str, category: type[Warning]):
    def handler(args):
        import warnings

        warnings.warn(message, category)
        return 0

    monkeypatch.setattr(cli, "_configs", handler)


def test_a_ui3d_warning_is_one_line_without_file_or_source(monkeypatch, capsys):
    from ui3d.export.mesh import ExportWarning

    _handler_warning(monkeypatch, "export: the scene is mostly transparent\nsecond line", ExportWarning)
    assert cli.main(["configs"]) == 0
    assert capsys.readouterr().err == "warning: export: the scene is mostly transparent\n"


def test_other_libraries_warnings_go_to_the_usual_handler(monkeypatch, capsys):
    import warnings

    _handler_warning(monkeypatch, "a library's note", UserWarning)  # raised outside ui3d: this test file
    original = warnings.showwarning
    with pytest.warns(UserWarning, match="a library's note"):  # reached the handler main found
        assert cli.main(["configs"]) == 0
        assert warnings.showwarning is original  # and main put it back
    assert capsys.readouterr().err == ""
