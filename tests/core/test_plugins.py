"""Plugin discovery and registration: hooks, guarded entry-point loading, env switches, conflicts."""

import warnings

import pytest

from llavidal_core import CueSpec, hookimpl
from llavidal_core.errors import DuplicateRegistrationError, MissingPluginError, PluginLoadError
from llavidal_core.plugins import LlavidalPluginManager, PluginLoadWarning, get_cues, get_plugin_manager
from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC


def load_installed() -> LlavidalPluginManager:
    manager = LlavidalPluginManager()
    manager.load_entry_points()
    return manager


def test_builtins_register_projectors_through_the_hook(llavidal_plugins):
    projectors = llavidal_plugins.projectors()
    assert set(projectors) == {"linear", "mlp2x_gelu"}
    assert projectors["linear"].source.distribution == "llavidal-core"
    assert llavidal_plugins.cues() == {}
    names = [record["name"] for record in llavidal_plugins.describe()]
    assert all(record["builtin"] for record in llavidal_plugins.describe()), names


def test_fake_plugin_registers_a_cue(fake_cue_plugins):
    registration = get_cues()["fake"]
    assert registration.spec.placeholder == FAKE_CUE_SPEC.placeholder
    assert registration.spec.distribution == "llavidal-fake"  # filled in from the plugin's source
    assert registration.spec.version == "0.0.1"
    encoder = registration.encoder_factory()()
    assert encoder.encode(["a"])[0].shape == (4, 8)
    record = next(r for r in fake_cue_plugins.describe() if r["name"] == "fake")
    assert record["cues"] == ["fake"] and record["hooks"] == ["llavidal_register_cues"]


def test_missing_cue_error_names_the_pip_line(llavidal_plugins):
    with pytest.raises(MissingPluginError, match="pip install llavidal-pose"):
        llavidal_plugins.cue("pose")


def test_unregister_forgets_the_cue(fake_cue_plugins):
    assert "fake" in fake_cue_plugins.cues()
    fake_cue_plugins.unregister("fake")
    assert "fake" not in fake_cue_plugins.cues()


def test_broken_plugin_warns_once_and_the_others_load(distributions):
    distributions.add_cue_plugin("good-plugin", "good")
    distributions.add_cue_plugin("broken-plugin", "broken", raise_at_import="boom at import")
    with pytest.warns(PluginLoadWarning) as caught:
        manager = load_installed()
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert len(messages) == 1
    assert "broken-plugin" in messages[0] and "boom at import" in messages[0]
    assert set(manager.cues()) == {"good"}
    assert [f.distribution for f in manager.failures] == ["broken-plugin"]


def test_strict_mode_raises_naming_the_plugin(distributions, monkeypatch):
    distributions.add_cue_plugin("broken-plugin", "broken", raise_at_import="boom")
    monkeypatch.setenv("LLAVIDAL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="broken-plugin"):
        load_installed()


def test_allow_list_loads_only_the_named_distributions(distributions, monkeypatch):
    distributions.add_cue_plugin("good-plugin", "good")
    distributions.add_cue_plugin("other-plugin", "other")
    distributions.add_cue_plugin("broken-plugin", "broken", raise_at_import="must not be imported")
    monkeypatch.setenv("LLAVIDAL_LOAD_PLUGINS", "Good_Plugin")  # names are normalised as pip does
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager = load_installed()
    assert set(manager.cues()) == {"good"}
    assert {"llavidal_core.projectors"} <= {r["name"] for r in manager.describe()}


def test_empty_allow_list_loads_no_plugins_but_the_builtins(distributions, monkeypatch):
    distributions.add_cue_plugin("good-plugin", "good")
    monkeypatch.setenv("LLAVIDAL_LOAD_PLUGINS", "")
    manager = load_installed()
    assert manager.cues() == {}
    assert set(manager.projectors()) == {"linear", "mlp2x_gelu"}


def test_allow_list_naming_an_absent_distribution_warns(distributions, monkeypatch):
    monkeypatch.setenv("LLAVIDAL_LOAD_PLUGINS", "no-such-plugin")
    with pytest.warns(PluginLoadWarning, match="no-such-plugin"):
        load_installed()


def test_duplicate_cue_names_name_both_distributions(distributions):
    distributions.add_cue_plugin("first-plugin", "dup")
    distributions.add("second-plugin", {"second_module": _module_registering("dup")}, {"dup2": "second_module"})
    with pytest.warns(PluginLoadWarning, match="neither is used"):
        manager = load_installed()
        assert "dup" not in manager.cues()  # given to neither
    with pytest.raises(DuplicateRegistrationError) as error:
        manager.cue("dup")
    assert "first-plugin" in str(error.value) and "second-plugin" in str(error.value)
    assert {f.distribution for f in manager.failures} == {"first-plugin", "second-plugin"}


def test_entry_point_name_clash_is_reported(distributions):
    distributions.add_cue_plugin("first-plugin", "same")
    distributions.add("second-plugin", {"second_module": _module_registering("other")}, {"same": "second_module"})
    with pytest.warns(PluginLoadWarning, match="second-plugin"):
        manager = load_installed()
    assert set(manager.cues()) == {"same"}


def test_hook_that_raises_is_reported_and_the_rest_still_register(llavidal_plugins):
    class Exploding:
        @hookimpl
        def llavidal_register_cues(self, register):
            raise RuntimeError("hook exploded")

    class Fine:
        @hookimpl
        def llavidal_register_cues(self, register):
            register(FAKE_CUE_SPEC)

    llavidal_plugins.register(Exploding(), name="exploding")
    llavidal_plugins.register(Fine(), name="fine")
    with pytest.warns(PluginLoadWarning, match="exploding.*hook exploded"):
        cues = llavidal_plugins.cues()
    assert set(cues) == {"fake"}


def test_bad_register_call_is_reported(llavidal_plugins):
    class Sloppy:
        @hookimpl
        def llavidal_register_cues(self, register):
            register({"name": "not a spec"})

    llavidal_plugins.register(Sloppy(), name="sloppy")
    with pytest.warns(PluginLoadWarning, match="sloppy.*CueSpec"):
        assert llavidal_plugins.cues() == {}
    assert llavidal_plugins.cues() == {}  # read again: reported once
    assert [f.name for f in llavidal_plugins.failures] == ["sloppy"]


def test_plugin_projector_is_built_by_name(llavidal_plugins):
    class Doubling:
        @hookimpl
        def llavidal_register_projectors(self, register):
            register("double_linear", lambda feature_dim, hidden: ("built", feature_dim, hidden))

    llavidal_plugins.register(Doubling(), name="doubling")
    assert llavidal_plugins.build_projector("double_linear", 3, 5) == ("built", 3, 5)
    with pytest.raises(MissingPluginError, match="no_such"):
        llavidal_plugins.build_projector("no_such", 3, 5)


def test_default_manager_is_replaced_by_the_fixture(llavidal_plugins):
    assert get_plugin_manager() is llavidal_plugins


def _module_registering(cue_name: str) -> str:
    spec = CueSpec(name=cue_name, placeholder=f"<{cue_name}>", patch_token=f"<{cue_name}_p>", feature_dim=2,
                   num_tokens=1)
    return (
        "from llavidal_core import CueSpec, hookimpl\n"
        f"SPEC = CueSpec.from_json({spec.to_json()!r})\n"
        "@hookimpl\n"
        "def llavidal_register_cues(register):\n"
        "    register(SPEC)\n"
    )


# -- a plugin can only break itself ---------------------------------------------------------------------------------

@pytest.mark.parametrize("statement, shown", [
    ("import sys\nsys.exit(3)\n", "SystemExit: exit code 3"),
    ("raise SystemExit\n", "SystemExit: exit code None"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
], ids=["sys.exit", "bare-SystemExit", "KeyboardInterrupt"])
def test_a_plugin_ending_the_process_at_import_is_reported(statement, shown, distributions):
    distributions.add_cue_plugin("good-plugin", "good")
    distributions.add("exiting-plugin", {"exiting_plugin": statement}, {"exiting": "exiting_plugin"})
    with pytest.warns(PluginLoadWarning, match="exiting-plugin"):
        manager = load_installed()
    assert set(manager.cues()) == {"good"}
    assert [(f.distribution, f.error) for f in manager.failures] == [("exiting-plugin", f"at import: {shown}")]


@pytest.mark.parametrize("ending", [SystemExit(2), KeyboardInterrupt()], ids=["SystemExit", "KeyboardInterrupt"])
def test_a_hook_ending_the_process_is_reported(ending, llavidal_plugins):
    class Ending:
        @hookimpl
        def llavidal_register_cues(self, register):
            raise ending

    class Fine:
        @hookimpl
        def llavidal_register_cues(self, register):
            register(FAKE_CUE_SPEC)

    llavidal_plugins.register(Ending(), name="ending")
    llavidal_plugins.register(Fine(), name="fine")
    with pytest.warns(PluginLoadWarning, match=f"ending.*{type(ending).__name__}"):
        assert set(llavidal_plugins.cues()) == {"fake"}


def test_a_core_name_stays_the_cores(llavidal_plugins):
    class Usurper:
        @hookimpl
        def llavidal_register_projectors(self, register):
            register("linear", lambda feature_dim, hidden: "the plugin's")
            register("usurper_projector", lambda feature_dim, hidden: "kept")

    llavidal_plugins.register(Usurper(), name="usurper", distribution="llavidal-usurper")
    with pytest.warns(PluginLoadWarning, match="projector 'linear' is already provided by llavidal-core"):
        projectors = llavidal_plugins.projectors()
    assert projectors["linear"].source.builtin
    assert llavidal_plugins.build_projector("usurper_projector", 2, 3) == "kept"
    assert [f.distribution for f in llavidal_plugins.failures] == ["llavidal-usurper"]


def test_failures_list_every_hook_without_asking_for_it_first(llavidal_plugins):
    class Sloppy:
        @hookimpl
        def llavidal_register_cues(self, register):
            register("not a spec")

    llavidal_plugins.register(Sloppy(), name="sloppy")
    with pytest.warns(PluginLoadWarning):
        failures = llavidal_plugins.failures
    assert [f.name for f in failures] == ["sloppy"] and "bad register() call" in failures[0].error


def test_describe_survives_malformed_register_calls(llavidal_plugins):
    class Sloppy:
        @hookimpl
        def llavidal_register_cues(self, register):
            register(FAKE_CUE_SPEC, encoder="x:Y", unexpected=True)
            register()

    llavidal_plugins.register(Sloppy(), name="sloppy")
    with pytest.warns(PluginLoadWarning):
        record = next(r for r in llavidal_plugins.describe() if r["name"] == "sloppy")
    assert record["cues"] == []
    assert len(llavidal_plugins.failures) == 2
