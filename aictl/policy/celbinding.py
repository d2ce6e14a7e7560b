"""The CEL implementation: the Rust-backed ``common-expression-language`` package, loaded once,
lazily, when the first condition is compiled or evaluated (see :func:`cel`)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def cel() -> ModuleType:
    """The CEL extension module, loaded without the ``cel`` package's ``__init__``.

    ``import cel`` also imports the package's interactive command line (typer, prompt_toolkit,
    pygments): about 180 ms, against 8 ms for the extension alone. The extension is registered
    as ``cel.cel``, so a later ``import cel`` reuses it instead of initialising it twice (a
    PyO3 module cannot be). Anything unexpected falls back to the plain import.
    """
    loaded = sys.modules.get("cel.cel")
    if loaded is not None:
        return loaded
    try:
        spec = importlib.util.find_spec("cel")
        folder = Path(next(iter(spec.submodule_search_locations or ()))) if spec else None
        names = (f"cel{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES)
        found = (folder / name for name in names) if folder else iter(())
        binary = next((path for path in found if path.is_file()), None)
        extension = importlib.util.spec_from_file_location("cel.cel", binary) if binary else None
        if extension is None or extension.loader is None:
            raise ImportError("no CEL extension module found")
        module = importlib.util.module_from_spec(extension)
        sys.modules["cel.cel"] = module
        extension.loader.exec_module(module)
        return module
    except Exception:  # pragma: no cover - depends on how the package was installed
        sys.modules.pop("cel.cel", None)
        import cel as package

        return package
