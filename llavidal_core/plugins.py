"""Finding, loading and querying llavidal plugins.

A plugin is a module with ``@hookimpl`` functions (see `llavidal_core.hookspecs`), found through the
``llavidal`` entry-point group or registered in-process. The core's own projectors and commands are
registered the same way, as built-in plugins that always load.

A plugin can only break itself. Importing it, calling its hooks and reading its ``register`` calls are
guarded against any exception, ``SystemExit`` and ``KeyboardInterrupt`` included: the plugin is reported
(a `PluginLoadWarning` naming it, and a record in `LlavidalPluginManager.failures`) and the others load.
A name it registers that the core already provides (a command such as ``train``, a projector such as
``linear``) stays the core's: the plugin's registration is dropped and reported. A name two plugins
register is given to neither: both are reported, and asking for it is a `DuplicateRegistrationError`
naming both. Only this loading phase is guarded; a command, once running, is not (Ctrl-C stops it).

Environment variables:

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
    "llavidal_core.commands.features",
    "llavidal_core.commands.instructions",
    "llavidal_core.commands.evaluation",
    "llavidal_core.commands.conversion",
    "llavidal_core.commands.training",
    "llavidal_core.commands.inference",
    "llavidal_core.commands.demo",
)
LOAD_PLUGINS_ENV = "LLAVIDAL_LOAD_PLUGINS"
STRICT_PLUGINS_ENV = "LLAVIDAL_STRICT_PLUGINS"

HOOK_NAMES = ("llavidal_register_cues", "llavidal_register_projectors", "llavidal_register_commands")
CORE_CLI_COMMANDS = (("plugins",),)  # defined by the CLI itself, not through the hook
COMMAND_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


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
@dataclass
class _HookCalls:
    """What each plugin passed to ``register`` for one hook: ``[(plugin, [(args, kwargs), ...]), ...]``."""

    per_plugin: list[tuple[str, list[tuple[tuple, dict]]]] = field(default_factory=list)


@dataclass
class _Registry:
    """One kind's registrations by key, and the keys withheld because two plugins claimed them."""

    entries: dict[Any, Any] = field(default_factory=dict)
    contested: dict[Any, str] = field(default_factory=dict)


class LlavidalPluginManager:
    """A pluggy manager for the ``llavidal`` hooks, with guarded loading and merged registries."""

    def __init__(self) -> None:
        self.pluggy = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pluggy.add_hookspecs(hookspecs)
        self._failures: list[PluginFailure] = []
        self._sources: dict[str, PluginSource] = {}
        self._hook_calls: dict[str, _HookCalls] = {}
        self._registries: dict[str, _Registry] = {}
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
        self._forget_registrations()

    def register(self, plugin: Any, name: str | None = None, *, distribution: str | None = None,
                 version: str | None = None) -> str:
        """Register a plugin object or module in-process (as tests do); returns its name."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self._register_module(plugin, name, distribution=distribution, version=version)
        return name

    def unregister(self, name: str) -> None:
        self.pluggy.unregister(name=name)
        self._sources.pop(name, None)
        self._forget_registrations()

    def _forget_registrations(self) -> None:
        self._hook_calls.clear()
        self._registries.clear()

    def _fail(self, name: str, distribution: str | None, version: str | None, error: str) -> None:
        failure = PluginFailure(name, distribution, version, error)
        if _env_flag(STRICT_PLUGINS_ENV):
            raise PluginLoadError(f"{failure.describe()} ({STRICT_PLUGINS_ENV} is set)")
        if failure in self._failures:  # the same registrations read again after a register()/unregister()
            return
        self._failures.append(failure)
        warnings.warn(f"llavidal: {failure.describe()}; the other plugins were loaded",
                      PluginLoadWarning, stacklevel=3)

    def report_failure(self, source: PluginSource, error: str) -> None:
        """Record that the plugin ``source`` failed (a warning, or `PluginLoadError` in strict mode)."""
        self._fail(source.name, source.distribution, source.version, error)

    @property
    def failures(self) -> list[PluginFailure]:
        """Every plugin failure so far: imports, hooks, ``register`` calls and name clashes (all hooks are read)."""
        for kind in REGISTRY_KINDS:
            self._registry(kind)
        return list(self._failures)

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
            except BaseException as exc:  # noqa: BLE001 - sys.exit() or Ctrl-C at import must not end the process
                self._fail(entry_point.name, distribution, version, f"at import: {describe_exception(exc)}")
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
            except BaseException as exc:  # noqa: BLE001 - a hook that exits or raises breaks only its plugin
                source = self._source(impl.plugin_name)
                self._fail(source.name, source.distribution, source.version,
                           f"{hook_name} raised {describe_exception(exc)}")
                continue
            calls.per_plugin.append((impl.plugin_name, recorded))
        self._hook_calls[hook_name] = calls
        return calls

    def _registry(self, kind: str) -> _Registry:
        """The registrations of one kind (cue, projector, command), built once: checked, clashes resolved."""
        if kind not in self._registries:
            hook_name, make, key_of = REGISTRY_KINDS[kind]
            claims: dict[Any, list[Any]] = {}
            for plugin_name, recorded in self._calls(hook_name).per_plugin:
                source = self._source(plugin_name)
                for args, kwargs in recorded:
                    registration = self._checked(source, make, args, kwargs)
                    if registration is not None:
                        claims.setdefault(key_of(registration), []).append(registration)
            if kind == "command":
                self._add_extraction_commands(claims)
            registry = _Registry()
            for key, registrations in claims.items():
                self._settle(kind, key, registrations, registry)
            if kind == "command":
                self._drop_overlapping_commands(registry)
            self._registries[kind] = registry
        return self._registries[kind]

    def _add_extraction_commands(self, claims: dict[Any, list[Any]]) -> None:
        """``extract CUE`` for every cue with an encoder whose plugin registers no such command itself: the
        core's engine with the generic options (`llavidal_core.commands.extraction`)."""
        from llavidal_core.commands.extraction import generic_extract_command

        for name, cue in self._registry("cue").entries.items():
            path = ("extract", name)
            if cue.encoder is not None and path not in claims:
                claims[path] = [generic_extract_command(cue)]

    def _settle(self, kind: str, key: Any, registrations: list[Any], registry: _Registry) -> None:
        """Give ``key`` to its one claimant, or to the core's claim; two plugins' claims are both withheld."""
        core = [r for r in registrations if r.source.builtin]
        reserved = kind == "command" and key in CORE_CLI_COMMANDS
        if len(registrations) == 1 and not reserved:
            registry.entries[key] = registrations[0]
            return
        if core or reserved:
            if core:
                registry.entries[key] = core[0]
            for registration in registrations:
                if not registration.source.builtin:
                    self.report_failure(registration.source, f"{kind} {_shown(key)!r} is already provided by "
                                                             f"{CORE_DISTRIBUTION}; the plugin's {kind} is ignored")
            return
        names = " and by ".join(_describe_source(r.source) for r in registrations)
        message = (f"{kind} {_shown(key)!r} is registered by {names}; neither is used: uninstall one of them, "
                   "or pick one with LLAVIDAL_LOAD_PLUGINS")
        registry.contested[key] = message
        for registration in registrations:
            self.report_failure(registration.source, message)

    def _drop_overlapping_commands(self, registry: _Registry) -> None:
        """A command nested under another command, or used as a group of others, loses to the core or the first."""
        kept: dict[tuple[str, ...], CommandRegistration] = {}
        ordered = sorted(registry.entries.values(), key=lambda r: (not r.source.builtin, r.path))
        for command in ordered:
            leaves = [*CORE_CLI_COMMANDS, *kept]
            clash = next((path for path in leaves if path[:len(command.path)] == command.path
                          or command.path[:len(path)] == path), None)
            if clash is None:
                kept[command.path] = command
                continue
            owner = CORE_DISTRIBUTION if clash in CORE_CLI_COMMANDS else _describe_source(kept[clash].source)
            self.report_failure(command.source, f"command {_shown(command.path)!r} overlaps the command "
                                                f"{_shown(clash)!r} of {owner}; the plugin's command is ignored")
        registry.entries = {path: kept[path] for path in sorted(kept)}

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
        """Every registered cue by name (a name two plugins claim is left out and reported)."""
        return dict(self._registry("cue").entries)

    def projectors(self) -> dict[str, ProjectorRegistration]:
        """Every registered projector by name (a name two plugins claim is left out and reported)."""
        return dict(self._registry("projector").entries)

    def commands(self) -> dict[tuple[str, ...], CommandRegistration]:
        """Every registered command by word path; together they form one tree (no command inside another)."""
        return dict(self._registry("command").entries)

    def cue(self, name: str) -> CueRegistration:
        """One cue's registration.

        Raises `DuplicateRegistrationError` naming both plugins if two claim it, `MissingPluginError` with the
        pip line if none does.
        """
        registry = self._registry("cue")
        if name in registry.contested:
            raise DuplicateRegistrationError(registry.contested[name])
        if name not in registry.entries:
            known = ", ".join(sorted(registry.entries)) or "none"
            raise MissingPluginError(
                f"no installed plugin provides the cue {name!r} (installed cues: {known}); "
                f"install it with: pip install llavidal-{name.replace('_', '-')}"
            )
        return registry.entries[name]

    def build_projector(self, name: str, feature_dim: int, llm_hidden_size: int):
        """The projector ``name`` built for ``(..., feature_dim) -> (..., llm_hidden_size)``; errors as `cue`."""
        registry = self._registry("projector")
        if name in registry.contested:
            raise DuplicateRegistrationError(registry.contested[name])
        if name not in registry.entries:
            raise MissingPluginError(
                f"no installed plugin provides the projector {name!r} (known: {', '.join(sorted(registry.entries))})"
            )
        return registry.entries[name].builder(feature_dim, llm_hidden_size)

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-able record per registered plugin, as ``llavidal plugins`` prints them.

        ``cues``, ``projectors`` and ``commands`` list what the plugin registered and is in use: a
        registration that failed or lost a name clash is in `failures` instead.
        """
        provided: dict[str, dict[str, list[str]]] = {}
        for kind, key in (("cue", "cues"), ("projector", "projectors"), ("command", "commands")):
            for name, registration in self._registry(kind).entries.items():
                entry = provided.setdefault(registration.source.name, {})
                entry.setdefault(key, []).append(_shown(name))
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


def describe_exception(exc: BaseException) -> str:
    """``"RuntimeError: boom"``; ``sys.exit(3)`` reads ``"SystemExit: exit code 3"``."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: exit code {exc.code!r}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shown(key: Any) -> str:
    return " ".join(key) if isinstance(key, tuple) else str(key)


def _describe_source(source: PluginSource) -> str:
    if source.distribution is None:
        return f"plugin {source.name!r} (registered in-process)"
    return f"distribution {source.distribution!r} (plugin {source.name!r})"


def _cue_registration(source: PluginSource, spec: Any, encoder: Any = None) -> CueRegistration:
    if not isinstance(spec, CueSpec):
        raise TypeError(f"a cue must be registered with a CueSpec, got {type(spec).__name__}")
    if encoder is not None and not isinstance(encoder, str) and not callable(encoder):
        raise TypeError(f"cue {spec.name!r}: encoder must be an import path 'package.module:Class' or a callable")
    if spec.distribution is None and source.distribution is not None:
        spec = dataclasses.replace(spec, distribution=source.distribution, version=source.version)
    return CueRegistration(spec, encoder, source)


def _projector_registration(source: PluginSource, name: str, builder: Callable) -> ProjectorRegistration:
    if not isinstance(name, str) or not name or not callable(builder):
        raise TypeError("register a projector as register(name: str, builder)")
    return ProjectorRegistration(name, builder, source)


def _command_registration(source: PluginSource, path: Any, *, run: Callable, help: str = "",
                          add_arguments: Callable | None = None) -> CommandRegistration:
    words = (path,) if isinstance(path, str) else tuple(path)
    if not words or not all(isinstance(w, str) and COMMAND_WORD.fullmatch(w) for w in words):
        raise ValueError(f"command path {path!r} must be a word or a tuple of words (letters, digits, - and _)")
    if not callable(run) or (add_arguments is not None and not callable(add_arguments)):
        raise TypeError(f"command {' '.join(words)!r}: run and add_arguments must be callables")
    if not isinstance(help, str):
        raise TypeError(f"command {' '.join(words)!r}: help must be a string")
    return CommandRegistration(words, help, run, add_arguments, source)


REGISTRY_KINDS: dict[str, tuple[str, Callable, Callable[[Any], Any]]] = {
    "cue": ("llavidal_register_cues", _cue_registration, lambda r: r.spec.name),
    "projector": ("llavidal_register_projectors", _projector_registration, lambda r: r.name),
    "command": ("llavidal_register_commands", _command_registration, lambda r: r.path),
}


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
