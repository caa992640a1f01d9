"""Finding, loading and querying llavidal plugins.

A plugin is a module with ``@hookimpl`` functions (see `llavidal_core.hookspecs`), found through the
``llavidal`` entry-point group or registered in-process. The core's own projectors and commands are
registered the same way, as built-in plugins that always load.

Loading is guarded entry point by entry point: one plugin that fails to import, or whose hook raises,
gives one `PluginLoadWarning` naming it and the others still load. Environment variables:

- ``LLAVIDAL_LOAD_PLUGINS=a,b`` loads only the entry points of those distributions; set but empty loads
  none (the built-ins still load). Unset loads every installed plugin.
- ``LLAVIDAL_STRICT_PLUGINS=1`` turns a plugin failure into a `PluginLoadError`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from llavidal_core import hookspecs
from llavidal_core.cues import CueSpec
from llavidal_core.errors import DuplicateRegistrationError, MissingPluginError, PluginLoadError

CORE_DISTRIBUTION = "llavidal-core"
BUILTIN_PLUGINS = (
    "llavidal_core.projectors",
    "llavidal_core.feature_commands",
    "llavidal_core.instruction_commands",
    "llavidal_core.evaluation_commands",
    "llavidal_core.conversion_commands",
    "llavidal_core.training_commands",
    "llavidal_core.inference_commands",
    "llavidal_core.demo_commands",
)
LOAD_PLUGINS_ENV = "LLAVIDAL_LOAD_PLUGINS"
STRICT_PLUGINS_ENV = "LLAVIDAL_STRICT_PLUGINS"

HOOK_NAMES = ("llavidal_register_cues", "llavidal_register_projectors", "llavidal_register_commands")


class PluginLoadWarning(UserWarning):
    """A plugin failed to load or register; the others were loaded."""


@dataclass(frozen=True)
class PluginSource:
    """Where a registered plugin came from."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool = False


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, and why."""

    name: str
    distribution: str | None
    version: str | None
    error: str

    def describe(self) -> str:
        source = f" from distribution {self.distribution!r}" if self.distribution else ""
        return f"plugin {self.name!r}{source} failed: {self.error}"


@dataclass(frozen=True)
class CueRegistration:
    """A cue as registered by a plugin: its spec and how to build its encoder."""

    spec: CueSpec
    encoder: Any
    source: PluginSource

    def encoder_factory(self) -> Callable[..., Any]:
        """The class or callable that builds this cue's `CueEncoder`, importing it now if needed."""
        if self.encoder is None:
            raise MissingPluginError(
                f"cue {self.spec.name!r} (plugin {self.source.name!r}) registered no encoder; "
                "its features must be computed elsewhere"
            )
        if isinstance(self.encoder, str):
            return import_object(self.encoder)
        return self.encoder


@dataclass(frozen=True)
class ProjectorRegistration:
    name: str
    builder: Callable[[int, int], Any]
    source: PluginSource


@dataclass(frozen=True)
class CommandRegistration:
    path: tuple[str, ...]
    help: str
    run: Callable[[Any], int | None]
    add_arguments: Callable[[Any], None] | None
    source: PluginSource


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"import path {path!r} must look like 'package.module:Name'")
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def normalize_distribution_name(name: str) -> str:
    """PEP 503 normalisation: ``LLaVIDAL_Video`` and ``llavidal-video`` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class _HookCalls:
    """What each plugin passed to ``register`` for one hook: ``[(plugin, [(args, kwargs), ...]), ...]``."""

    per_plugin: list[tuple[str, list[tuple[tuple, dict]]]] = field(default_factory=list)


class LlavidalPluginManager:
    """A pluggy manager for the ``llavidal`` hooks, with guarded loading and merged registries."""

    def __init__(self) -> None:
        self.pluggy = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pluggy.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._sources: dict[str, PluginSource] = {}
        self._hook_calls: dict[str, _HookCalls] = {}
        self._entry_points_loaded = False
        for module_name in BUILTIN_PLUGINS:
            self._register_module(importlib.import_module(module_name), module_name, builtin=True)

    # -- registration ---------------------------------------------------------------------------------

    def _register_module(self, plugin: Any, name: str, *, builtin: bool = False,
                         distribution: str | None = None, version: str | None = None) -> None:
        if builtin:
            from llavidal_core import __version__

            distribution, version = CORE_DISTRIBUTION, __version__
        self.pluggy.register(plugin, name=name)
        self._sources[name] = PluginSource(name, distribution, version, builtin)
        self._hook_calls.clear()

    def register(self, plugin: Any, name: str | None = None, *, distribution: str | None = None,
                 version: str | None = None) -> str:
        """Register a plugin object or module in-process (as tests do); returns its name."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self._register_module(plugin, name, distribution=distribution, version=version)
        return name

    def unregister(self, name: str) -> None:
        self.pluggy.unregister(name=name)
        self._sources.pop(name, None)
        self._hook_calls.clear()

    def _fail(self, name: str, distribution: str | None, version: str | None, error: str) -> None:
        failure = PluginFailure(name, distribution, version, error)
        if _env_flag(STRICT_PLUGINS_ENV):
            raise PluginLoadError(f"{failure.describe()} ({STRICT_PLUGINS_ENV} is set)")
        self.failures.append(failure)
        warnings.warn(f"llavidal: {failure.describe()}; the other plugins were loaded",
                      PluginLoadWarning, stacklevel=3)

    def load_entry_points(self) -> None:
        """Load installed plugins from the ``llavidal`` entry-point group, once, each one guarded."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        allowed = os.environ.get(LOAD_PLUGINS_ENV)
        allow_list = None
        if allowed is not None:
            allow_list = {normalize_distribution_name(n) for n in allowed.split(",") if n.strip()}
        found: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for entry_point in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            distribution = entry_point.dist.name if entry_point.dist is not None else None
            version = entry_point.dist.version if entry_point.dist is not None else None
            key = (normalize_distribution_name(distribution or ""), entry_point.name)
            if key in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(key)
            if allow_list is not None and key[0] not in allow_list:
                continue
            found.add(key[0])
            if entry_point.name in self._sources:
                other = self._sources[entry_point.name]
                self._fail(entry_point.name, distribution, version,
                           f"the plugin name is already taken by distribution {other.distribution!r}")
                continue
            try:
                module = entry_point.load()
                self._register_module(module, entry_point.name, distribution=distribution, version=version)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
                self._fail(entry_point.name, distribution, version, f"{type(exc).__name__}: {exc}")
        for missing in sorted((allow_list or set()) - found):
            self._fail(missing, missing, None, f"named in {LOAD_PLUGINS_ENV} but no such installed distribution "
                                               "provides llavidal plugins")

    # -- querying -------------------------------------------------------------------------------------

    def _calls(self, hook_name: str) -> _HookCalls:
        """Call one hook plugin by plugin, recording what each registered (so conflicts can name both)."""
        if hook_name in self._hook_calls:
            return self._hook_calls[hook_name]
        calls = _HookCalls()
        for impl in getattr(self.pluggy.hook, hook_name).get_hookimpls():
            recorded: list[tuple[tuple, dict]] = []

            def register(*args, _recorded=recorded, **kwargs):
                _recorded.append((args, kwargs))

            try:
                impl.function(**{name: register for name in impl.argnames if name == "register"})
            except Exception as exc:  # noqa: BLE001
                source = self._sources.get(impl.plugin_name)
                self._fail(impl.plugin_name, source and source.distribution, source and source.version,
                           f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            calls.per_plugin.append((impl.plugin_name, recorded))
        self._hook_calls[hook_name] = calls
        return calls

    def _checked(self, source: PluginSource, make: Callable, args: tuple, kwargs: dict) -> Any:
        """Build one registration; a malformed ``register`` call is reported like a failed plugin."""
        try:
            return make(source, *args, **kwargs)
        except (TypeError, ValueError, PluginLoadError) as exc:
            self._fail(source.name, source.distribution, source.version, f"bad register() call: {exc}")
            return None

    def _source(self, plugin_name: str) -> PluginSource:
        return self._sources.get(plugin_name, PluginSource(plugin_name, None, None))

    def cues(self) -> dict[str, CueRegistration]:
        """Every registered cue by name; two plugins registering one name is a `DuplicateRegistrationError`."""
        registry: dict[str, CueRegistration] = {}
        for plugin_name, recorded in self._calls("llavidal_register_cues").per_plugin:
            source = self._source(plugin_name)
            for args, kwargs in recorded:
                registration = self._checked(source, _cue_registration, args, kwargs)
                if registration is not None:
                    _add_unique(registry, registration.spec.name, registration, "cue")
        return registry

    def projectors(self) -> dict[str, ProjectorRegistration]:
        registry: dict[str, ProjectorRegistration] = {}
        for plugin_name, recorded in self._calls("llavidal_register_projectors").per_plugin:
            source = self._source(plugin_name)
            for args, kwargs in recorded:
                registration = self._checked(source, _projector_registration, args, kwargs)
                if registration is not None:
                    _add_unique(registry, registration.name, registration, "projector")
        return registry

    def commands(self) -> dict[tuple[str, ...], CommandRegistration]:
        registry: dict[tuple[str, ...], CommandRegistration] = {}
        for plugin_name, recorded in self._calls("llavidal_register_commands").per_plugin:
            source = self._source(plugin_name)
            for args, kwargs in recorded:
                registration = self._checked(source, _command_registration, args, kwargs)
                if registration is not None:
                    _add_unique(registry, registration.path, registration, "command")
        return registry

    def cue(self, name: str) -> CueRegistration:
        """One cue's registration; a `MissingPluginError` with the pip line if no plugin provides it."""
        registry = self.cues()
        if name not in registry:
            known = ", ".join(sorted(registry)) or "none"
            raise MissingPluginError(
                f"no installed plugin provides the cue {name!r} (installed cues: {known}); "
                f"install it with: pip install llavidal-{name.replace('_', '-')}"
            )
        return registry[name]

    def build_projector(self, name: str, feature_dim: int, llm_hidden_size: int):
        registry = self.projectors()
        if name not in registry:
            raise MissingPluginError(
                f"no installed plugin provides the projector {name!r} (known: {', '.join(sorted(registry))})"
            )
        return registry[name].builder(feature_dim, llm_hidden_size)

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-able record per registered plugin, as ``llavidal plugins`` prints them."""
        provided: dict[str, dict[str, list]] = {}
        for hook_name, key, label in (("llavidal_register_cues", "cues", _cue_label),
                                      ("llavidal_register_projectors", "projectors", _projector_label),
                                      ("llavidal_register_commands", "commands", _command_label)):
            for plugin_name, recorded in self._calls(hook_name).per_plugin:
                entry = provided.setdefault(plugin_name, {})
                entry.setdefault(key, []).extend(label(*args, **kwargs) for args, kwargs in recorded)
        records = []
        for name, plugin in self.pluggy.list_name_plugin():
            source = self._source(name)
            hooks = sorted(caller.name for caller in self.pluggy.get_hookcallers(plugin) or [])
            record = {
                "name": name,
                "distribution": source.distribution,
                "version": source.version,
                "builtin": source.builtin,
                "hooks": hooks,
                "cues": [],
                "projectors": [],
                "commands": [],
            }
            record.update(provided.get(name, {}))
            records.append(record)
        return records


def _add_unique(registry: dict, key: Any, registration: Any, kind: str) -> None:
    if key in registry:
        shown = " ".join(key) if isinstance(key, tuple) else key
        raise DuplicateRegistrationError(
            f"{kind} {shown!r} is registered twice: by {_describe_source(registry[key].source)} and by "
            f"{_describe_source(registration.source)}; uninstall one of them, or pick one with LLAVIDAL_LOAD_PLUGINS"
        )
    registry[key] = registration


def _describe_source(source: PluginSource) -> str:
    if source.distribution is None:
        return f"plugin {source.name!r} (registered in-process)"
    return f"distribution {source.distribution!r} (plugin {source.name!r})"


def _cue_registration(source: PluginSource, spec: Any, encoder: Any = None) -> CueRegistration:
    if not isinstance(spec, CueSpec):
        raise TypeError(f"a cue must be registered with a CueSpec, got {type(spec).__name__}")
    if spec.distribution is None and source.distribution is not None:
        spec = dataclasses.replace(spec, distribution=source.distribution, version=source.version)
    return CueRegistration(spec, encoder, source)


def _projector_registration(source: PluginSource, name: str, builder: Callable) -> ProjectorRegistration:
    if not isinstance(name, str) or not callable(builder):
        raise TypeError("register a projector as register(name: str, builder)")
    return ProjectorRegistration(name, builder, source)


def _command_registration(source: PluginSource, path: Any, *, run: Callable, help: str = "",
                          add_arguments: Callable | None = None) -> CommandRegistration:
    words = (path,) if isinstance(path, str) else tuple(path)
    if not words or not all(isinstance(w, str) and w for w in words):
        raise ValueError(f"command path {path!r} must be a word or a tuple of words")
    return CommandRegistration(words, help, run, add_arguments, source)


def _cue_label(spec: Any, encoder: Any = None) -> str:
    return getattr(spec, "name", repr(spec))


def _projector_label(name: Any, builder: Any = None) -> str:
    return str(name)


def _command_label(path: Any, **kwargs: Any) -> str:
    return path if isinstance(path, str) else " ".join(path)


_default_manager: LlavidalPluginManager | None = None


def get_plugin_manager() -> LlavidalPluginManager:
    """The process-wide manager, with installed plugins loaded on first use."""
    global _default_manager
    if _default_manager is None:
        manager = LlavidalPluginManager()
        manager.load_entry_points()
        _default_manager = manager
    return _default_manager


def set_plugin_manager(manager: LlavidalPluginManager | None) -> LlavidalPluginManager | None:
    """Replace the process-wide manager (tests use this to isolate themselves); returns the previous one."""
    global _default_manager
    previous, _default_manager = _default_manager, manager
    return previous


def get_cues() -> dict[str, CueRegistration]:
    return get_plugin_manager().cues()


def get_cue(name: str) -> CueRegistration:
    return get_plugin_manager().cue(name)


def build_projector(name: str, feature_dim: int, llm_hidden_size: int):
    return get_plugin_manager().build_projector(name, feature_dim, llm_hidden_size)
