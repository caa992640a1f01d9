"""The ``llavidal`` command line: version, plugins listing, plugin commands, errors, import cost."""

import json
import logging
import os
import subprocess
import sys

import pytest

from llavidal_core import LlavidalError, __version__, hookimpl
from llavidal_core.errors import UsageError
from llavidal_core.cli import main


def run_cli(*args, env_extra=None, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAVIDAL_")}
    env.update(env_extra or {})
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run([sys.executable, "-m", "llavidal_core", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"llavidal {__version__}"


def test_no_command_prints_usage_and_exits_2(capsys, llavidal_plugins):
    assert main([]) == 2
    assert "usage: llavidal" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys, llavidal_plugins):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


def test_plugins_lists_builtins_as_json(capsys, llavidal_plugins):
    assert main(["plugins"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in records} >= {"llavidal_core.projectors"}
    assert all(r["distribution"] == "llavidal-core" and r["builtin"] for r in records)
    projectors = next(r for r in records if r["name"] == "llavidal_core.projectors")
    assert projectors["projectors"] == ["linear", "mlp2x_gelu"]
    assert set(projectors) == {"name", "distribution", "version", "builtin", "hooks", "cues", "projectors", "commands"}


class GreeterPlugin:
    """A plugin adding ``llavidal greet hello NAME`` and a command that fails with a user error."""

    @hookimpl
    def llavidal_register_commands(self, register):
        register(("greet", "hello"), help="say hello",
                 add_arguments=lambda parser: parser.add_argument("who"),
                 run=lambda args: print(f"hello {args.who}"))
        register(("greet", "fail"), help="fail politely", run=self.fail)

    @staticmethod
    def fail(args):
        raise LlavidalError("clip.mp4: this video has no frames")


def test_plugin_commands_nest_by_path(capsys, llavidal_plugins):
    llavidal_plugins.register(GreeterPlugin(), name="greeter")
    assert main(["greet", "hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert main(["greet"]) == 2  # a group without its subcommand prints its usage
    assert "hello" in capsys.readouterr().err


def test_user_errors_print_one_line_and_exit_1(capsys, llavidal_plugins):
    llavidal_plugins.register(GreeterPlugin(), name="greeter")
    assert main(["greet", "fail"]) == 1
    err = capsys.readouterr().err
    assert err == "llavidal: error: clip.mp4: this video has no frames\n"


def test_a_usage_error_prints_one_line_and_exits_2(capsys, llavidal_plugins):
    class Picky:
        @hookimpl
        def llavidal_register_commands(self, register):
            register(("picky",), help="refuses its command line", run=self.run)

        @staticmethod
        def run(args):
            raise UsageError("--top must be at least 1, got 0")

    llavidal_plugins.register(Picky(), name="picky")
    assert main(["picky"]) == 2
    assert capsys.readouterr().err == "llavidal: error: --top must be at least 1, got 0\n"


class TalkativePlugin:
    """``llavidal talk``: logs what a command reports as it runs, a library detail, a debug line and a warning."""

    @hookimpl
    def llavidal_register_commands(self, register):
        register(("talk",), help="log at every level", run=self.run)

    @staticmethod
    def run(args):
        logging.getLogger("llavidal.talk").info("talk: step 1 of 2")
        library = logging.getLogger("llavidal_core.talkative")
        library.info("a library detail")
        library.debug("a debug line")
        library.warning("a warning")
        print("the answer")


def test_by_default_command_progress_and_warnings_show_library_details_do_not(capsys, llavidal_plugins):
    llavidal_plugins.register(TalkativePlugin(), name="talkative")
    assert main(["talk"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "the answer\n"
    assert captured.err == "talk: step 1 of 2\nllavidal: warning: a warning\n"  # a warning says it is one


def test_quiet_shows_only_warnings_and_errors(capsys, llavidal_plugins):
    llavidal_plugins.register(TalkativePlugin(), name="talkative")
    assert main(["--quiet", "talk"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "the answer\n" and captured.err == "llavidal: warning: a warning\n"
    assert main(["-q", "talk"]) == 0
    assert capsys.readouterr().err == "llavidal: warning: a warning\n"


def test_verbose_shows_the_library_details_and_debug_lines(capsys, llavidal_plugins):
    llavidal_plugins.register(TalkativePlugin(), name="talkative")
    assert main(["--verbose", "talk"]) == 0
    assert capsys.readouterr().err == "talk: step 1 of 2\na library detail\na debug line\nllavidal: warning: a warning\n"
    assert main(["-v", "talk"]) == 0
    assert "a debug line" in capsys.readouterr().err


def test_quiet_and_verbose_together_are_a_usage_error(capsys, llavidal_plugins):
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "-v", "plugins"])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_main_leaves_logging_as_it_found_it(capsys, llavidal_plugins):
    llavidal_plugins.register(TalkativePlugin(), name="talkative")
    loggers = [logging.getLogger(name) for name in ("llavidal", "llavidal_core")]
    before = [(logger.level, list(logger.handlers)) for logger in loggers]
    assert main(["-v", "talk"]) == 0
    assert [(logger.level, list(logger.handlers)) for logger in loggers] == before
    capsys.readouterr()
    assert main(["talk"]) == 0  # a second call prints each line once
    assert capsys.readouterr().err.count("talk: step 1 of 2") == 1


def test_two_plugins_with_one_command_are_named_and_plugins_still_lists(capsys, llavidal_plugins):
    llavidal_plugins.register(GreeterPlugin(), name="greeter")
    llavidal_plugins.register(GreeterPlugin(), name="greeter-again", distribution="llavidal-greeter-fork")
    assert main(["plugins"]) == 0
    captured = capsys.readouterr()
    assert "'greet " in captured.err and "'greeter'" in captured.err and "llavidal-greeter-fork" in captured.err
    assert {"greeter", "greeter-again"} <= {r["name"] for r in json.loads(captured.out)}


def test_installed_plugins_are_listed_and_broken_ones_reported(distributions):
    distributions.add_cue_plugin("good-plugin", "good")
    distributions.add_cue_plugin("broken-plugin", "broken", raise_at_import="boom at import")
    only_these = {"LLAVIDAL_LOAD_PLUGINS": "good-plugin,broken-plugin"}  # not whatever else is installed
    result = run_cli("plugins", env_extra=only_these, pythonpath=[distributions.root])
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("broken-plugin") == 1 and "Traceback" not in result.stderr
    good = next(r for r in json.loads(result.stdout) if r["name"] == "good")
    assert good["distribution"] == "good-plugin" and good["cues"] == ["good"]

    result = run_cli("plugins", "--errors", env_extra=only_these, pythonpath=[distributions.root])
    errors = json.loads(result.stdout)
    assert [e["distribution"] for e in errors] == ["broken-plugin"]
    assert "boom at import" in errors[0]["error"]


def test_strict_mode_exits_1_naming_the_plugin(distributions):
    distributions.add_cue_plugin("broken-plugin", "broken", raise_at_import="boom")
    result = run_cli("plugins", env_extra={"LLAVIDAL_STRICT_PLUGINS": "1", "LLAVIDAL_LOAD_PLUGINS": "broken-plugin"},
                     pythonpath=[distributions.root])
    assert result.returncode == 1
    assert "broken-plugin" in result.stderr and "Traceback" not in result.stderr


def test_allow_list_env_in_the_cli(distributions):
    distributions.add_cue_plugin("good-plugin", "good")
    distributions.add_cue_plugin("broken-plugin", "broken", raise_at_import="boom")
    result = run_cli("plugins", env_extra={"LLAVIDAL_LOAD_PLUGINS": "good-plugin"}, pythonpath=[distributions.root])
    assert result.returncode == 0 and result.stderr == ""
    names = {r["name"] for r in json.loads(result.stdout)}
    assert "good" in names and "broken" not in names
    result = run_cli("plugins", env_extra={"LLAVIDAL_LOAD_PLUGINS": ""}, pythonpath=[distributions.root])
    assert all(r["builtin"] for r in json.loads(result.stdout))


def imported_modules(*python_args):
    result = subprocess.run([sys.executable, "-X", "importtime", *python_args], capture_output=True, text=True,
                            timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("LLAVIDAL_")})
    assert result.returncode == 0, result.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("python_args", [("-c", "import llavidal_core"), ("-m", "llavidal_core", "plugins")],
                         ids=["import", "plugins-command"])
def test_core_and_plugins_command_do_not_import_torch(python_args):
    modules = imported_modules(*python_args)
    assert "llavidal_core.plugins" in modules or python_args[0] == "-c"
    heavy = sorted(m for m in modules if m.split(".")[0] in {"torch", "transformers", "numpy", "safetensors"})
    assert heavy == [], f"imported {heavy[:5]}"


# -- a plugin can only break itself -------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", ["import sys\nsys.exit(0)\n", "raise KeyboardInterrupt\n"],
                         ids=["sys.exit", "KeyboardInterrupt"])
def test_a_plugin_ending_the_process_at_import_breaks_only_itself(statement, distributions):
    distributions.add_cue_plugin("good-plugin", "good")
    distributions.add("exiting-plugin", {"exiting_plugin": statement}, {"exiting": "exiting_plugin"})
    only_these = {"LLAVIDAL_LOAD_PLUGINS": "good-plugin,exiting-plugin"}
    result = run_cli("plugins", "--errors", env_extra=only_these, pythonpath=[distributions.root])
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)
    assert [e["distribution"] for e in errors] == ["exiting-plugin"]
    result = run_cli("convert", "apply-delta", "--help", env_extra=only_these, pythonpath=[distributions.root])
    assert result.returncode == 0 and "--delta" in result.stdout


class UsurperPlugin:
    """Registers the core's ``train``, a command inside it, the core's ``convert`` group and ``plugins``."""

    @hookimpl
    def llavidal_register_commands(self, register):
        register(("train",), help="not the real train", run=lambda args: print("usurped"))
        register(("train", "faster"), help="nests under the core's train", run=lambda args: 0)
        register(("convert",), help="a leaf where the core has a group", run=lambda args: 0)
        register(("plugins", "mine"), help="inside the CLI's own command", run=lambda args: 0)
        register(("usurp", "ok"), help="its own command", run=lambda args: print("still here"))


def test_a_plugin_reusing_core_commands_loses_them_and_keeps_its_own(capsys, llavidal_plugins):
    from llavidal_core.commands import training as training_commands

    llavidal_plugins.register(UsurperPlugin(), name="usurper", distribution="llavidal-usurper")
    assert main(["usurp", "ok"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "still here\n"
    for clash in ("'train' is already provided by llavidal-core", "'train faster' overlaps the command 'train'",
                  "'convert' overlaps the command 'convert apply-delta'", "'plugins mine' overlaps"):
        assert clash in captured.err
    assert llavidal_plugins.commands()[("train",)].run is training_commands.run
    assert main(["plugins", "--errors"]) == 0
    errors = json.loads(capsys.readouterr().out)
    assert len(errors) == 4 and {e["distribution"] for e in errors} == {"llavidal-usurper"}


def test_two_plugins_clashing_leave_the_core_commands_working(capsys, llavidal_plugins):
    llavidal_plugins.register(GreeterPlugin(), name="greeter")
    llavidal_plugins.register(GreeterPlugin(), name="greeter-again", distribution="llavidal-greeter-fork")
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "apply-delta", "--help"])
    assert exit_info.value.code == 0 and "--delta" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["greet", "hello", "x"])  # given to neither
    assert exit_info.value.code == 2


class BrokenArgumentsPlugin:
    @hookimpl
    def llavidal_register_commands(self, register):
        register(("broken",), help="its add_arguments exits", add_arguments=lambda parser: sys.exit(1),
                 run=lambda args: 0)
        register(("clashing",), help="adds -h again", add_arguments=lambda parser: parser.add_argument("-h"),
                 run=lambda args: 0)
        register(("fine",), help="works", run=lambda args: print("fine"))


def test_a_command_whose_arguments_fail_is_left_out(capsys, llavidal_plugins):
    llavidal_plugins.register(BrokenArgumentsPlugin(), name="broken-arguments")
    assert main(["fine"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "fine\n"
    assert "add_arguments of the command 'broken' raised SystemExit" in captured.err
    assert "add_arguments of the command 'clashing' raised" in captured.err
    assert main(["plugins", "--errors"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


class SloppyCuePlugin:
    @hookimpl
    def llavidal_register_cues(self, register):
        register({"name": "not a spec"})


def test_plugins_errors_lists_failed_register_calls(capsys, llavidal_plugins):
    llavidal_plugins.register(SloppyCuePlugin(), name="sloppy")
    assert main(["plugins", "--errors"]) == 0
    errors = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in errors] == ["sloppy"] and "CueSpec" in errors[0]["error"]


def test_ctrl_c_in_a_running_command_still_stops_it(capsys, llavidal_plugins):
    class Interrupted:
        @hookimpl
        def llavidal_register_commands(self, register):
            register(("long",), help="interrupted by the user", run=self.run)

        @staticmethod
        def run(args):
            raise KeyboardInterrupt

    llavidal_plugins.register(Interrupted(), name="interrupted")
    assert main(["long"]) == 130
    assert capsys.readouterr().err == "llavidal: interrupted\n"
