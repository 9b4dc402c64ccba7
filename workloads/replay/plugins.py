"""The engines installed: entry points of the group ``cloudai_workloads.engines``, each naming an
``EnginePlugin`` (workloads/replay/engine.py). Names are listed from the packages' metadata
without importing anything; an engine's module is imported only when it is chosen.

A package adds an engine with one line of its pyproject.toml:

    [project.entry-points."cloudai_workloads.engines"]
    myscheduler = "my_package.engine:PLUGIN"
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from workloads.replay.engine import EnginePlugin, ReplayInputError

GROUP = "cloudai_workloads.engines"
# The extra of this package that brings an engine's client library, for the hint below.
EXTRAS = {"docker": "replay", "swarm": "replay"}


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        found.setdefault(point.name, point)  # the first on sys.path wins, as imports do
    return found


def installed() -> list[str]:
    """The names of the engines installed, sorted."""
    return sorted(_entry_points())


def load(name: str) -> EnginePlugin:
    """The plug-in called ``name``; ReplayInputError (one line) when no such engine is
    installed, or its module cannot be imported (a missing client library, say)."""
    point = _entry_points().get(name)
    if point is None:
        known = ", ".join(installed()) or "none (is cloudai-workloads installed? pip install -e .)"
        raise ReplayInputError(f"no engine {name!r} is installed; installed: {known}")
    try:
        plugin = point.load()
    except ModuleNotFoundError as err:
        extra = EXTRAS.get(name)
        hint = f": pip install -e '.[{extra}]'" if extra else ""
        raise ReplayInputError(
            f"engine {name!r} needs the Python module {err.name!r}{hint}"
        ) from None
    if not isinstance(plugin, EnginePlugin):
        raise ReplayInputError(f"engine {name!r} ({point.value}) is not an EnginePlugin")
    return plugin
