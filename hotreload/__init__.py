"""hotreload: keep a running asyncio service's configuration current without a restart.

Watch a file, validate every new version against a msgspec schema (or a frozen pydantic v2
model, with the ``pydantic`` extra), swap it in as one atomic reference, and keep the previous
version whenever a new one is bad.
"""

from importlib.metadata import PackageNotFoundError, version

from ._derive import Derived
from ._errors import (
    ConfigApplyError,
    ConfigBuildError,
    ConfigError,
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
from ._outcome import ReloadOutcome, ReloadResult
from ._present import Explained
from ._provenance import Origin
from ._reloader import ApplyHook, HotReloader, Stream
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
    "ConfigParseError",
    "ConfigReadError",
    "ConfigRefusedError",
    "ConfigValidationError",
    "Derived",
    "EtcdSource",
    "Explained",
    "FileSource",
    "HotReloader",
    "Layer",
    "Layers",
    "Origin",
    "ReloadOutcome",
    "ReloadResult",
    "RestartRequired",
    "Revision",
    "Secret",
    "Snapshot",
    "Source",
    "Stream",
    "ToolsetFailureRecord",
    "__version__",
    "filter_by_stdlib_level",
    "reload_on_sighup",
]
