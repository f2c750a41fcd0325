"""hotreload: keep a running asyncio service's configuration current without a restart.

Watch a file, validate every new version against a msgspec schema (or a frozen pydantic v2
model, with the ``pydantic`` extra), swap it in as one atomic reference, and keep the previous
version whenever a new one is bad.
"""

import inspect as _inspect
from importlib.metadata import PackageNotFoundError, version
from types import FunctionType as _FunctionType
from types import GenericAlias as _GenericAlias

from ._derive import Derived
from ._errors import (
    ConfigApplyError,
    ConfigBuildError,
    ConfigError,
    ConfigNotFoundError,
    ConfigParseError,
    ConfigReadError,
    ConfigRefusedError,
    ConfigValidationError,
)
from ._etcd import EtcdSource
from ._failures import ToolsetFailureRecord
from ._fields import RestartRequired, Secret
from ._file_source import FileSource
from ._layers import Layer, Layers
from ._logging import filter_by_stdlib_level
from ._options import Failures, Fields, LogLevel
from ._outcome import ReloadOutcome, ReloadResult
from ._present import Explained
from ._probation import Evidence, Probation, QuarantineEntry
from ._provenance import Origin
from ._reloader import ApplyHook, HotReloader, Stream
from ._rollout import Rollout
from ._sighup import reload_on_sighup
from ._snapshot import Snapshot
from ._source import Revision, Source

try:
    __version__ = version("hotreload-engine")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ApplyHook",
    "ConfigApplyError",
    "ConfigBuildError",
    "ConfigError",
    "ConfigNotFoundError",
    "ConfigParseError",
    "ConfigReadError",
    "ConfigRefusedError",
    "ConfigValidationError",
    "Derived",
    "EtcdSource",
    "Evidence",
    "Explained",
    "Failures",
    "Fields",
    "FileSource",
    "HotReloader",
    "Layer",
    "Layers",
    "LogLevel",
    "Origin",
    "Probation",
    "QuarantineEntry",
    "ReloadOutcome",
    "ReloadResult",
    "RestartRequired",
    "Revision",
    "Rollout",
    "Secret",
    "Snapshot",
    "Source",
    "Stream",
    "ToolsetFailureRecord",
    "__version__",
    "filter_by_stdlib_level",
    "reload_on_sighup",
]

# Public names say where users import them from: `hotreload.ConfigParseError: ...` in a
# traceback, `<class 'hotreload.HotReloader'>` in a repr (httpx's fix-up). Pickle finds each
# by that name too. Classes and functions only: an alias (which Python 3.10 still calls a
# type) or a marker instance has no home of its own.


def _rehome(obj: object) -> None:
    """Move ``obj`` to ``hotreload``. A class's own annotations are evaluated first, in the
    module that wrote them: afterwards `typing.get_type_hints` and msgspec would look their
    names (``T``, ``ClassVar``, ``os``) up in ``hotreload``, where they are not."""
    if isinstance(obj, type):
        obj.__annotations__ = _inspect.get_annotations(obj, eval_str=True)
    obj.__module__ = "hotreload"


for __name in __all__:
    __obj = globals()[__name]
    if isinstance(__obj, (type, _FunctionType)) and not isinstance(__obj, _GenericAlias):
        _rehome(__obj)
del __name, __obj, _rehome, _FunctionType, _GenericAlias
