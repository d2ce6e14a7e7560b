"""The CEL implementation: the Rust-backed ``common-expression-language`` package, loaded once,
lazily, when the first condition is compiled or evaluated (see :func:`cel`).

A panic inside the Rust library (its parser panics formatting the error of a long expression
with a syntax error) reaches Python as ``pyo3_runtime.PanicException``, which derives from
``BaseException``: an ``except Exception`` lets it through, and it used to kill the daemon on a
policy reload. :func:`compile_program` and :func:`panics_as_errors` turn it into an ordinary
error, so that it is an invalid expression like any other.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any


class CelPanic(RuntimeError):
    """The CEL library panicked (a bug of the library, caught as an error of the expression)."""


def is_panic(error: BaseException) -> bool:
    """Whether ``error`` is a panic of the Rust library (``pyo3_runtime.PanicException``, a
    class that cannot be imported: it is created by the first panic)."""
    return type(error).__name__ == "PanicException" and not isinstance(error, Exception)


@contextmanager
def panics_as_errors() -> Iterator[None]:
    """Within the block, a panic of the Rust library is raised as ``CelPanic``; every other
    exception (``KeyboardInterrupt`` included) passes unchanged."""
    try:
        yield
    except Exception:
        raise
    except BaseException as error:
        if not is_panic(error):
            raise
        raise CelPanic(f"the CEL library failed on this expression: {error}") from None


def compile_program(source: str) -> Any:
    """``cel.compile(source)``; raises ``ValueError`` for an expression it cannot compile,
    a panic of its parser included."""
    try:
        with panics_as_errors():
            return cel().compile(source)
    except CelPanic as error:
        raise ValueError(str(error)) from None


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
