"""The ``llavidal`` command line: version, plugins listing, plugin commands, errors, import cost."""

import json
import os
import subprocess
import sys

import pytest

from llavidal_core import LlavidalError, __version__, hookimpl
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
