"""The ctypes side of a loaded native harness library, shared by every native harness.

Every harness (``sim/native/harness.cpp``, ``sim/native/accel_harness.cpp``) exports the model
lifecycle of ``sim/native/harness_common.h`` under its prefix (``<prefix>_info``, ``_create``,
``_destroy``, ``_error``) and one ``<prefix>_run``. `_declare_lifecycle` gives the lifecycle
functions their prototypes; `_HarnessModel`, the base of `sim.drivers.native.NativeSim` and
`sim.drivers.accel_native.NativeAccelerator`, owns the persistent model and makes the calls.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from pathlib import Path

# Return code of every harness's <prefix>_run for a Verilator fatal error or a C++ exception
# (kFatal); <prefix>_error then has the message.
_FATAL = -4


def _declare_lifecycle(lib: ctypes.CDLL, prefix: str) -> None:
    """Prototypes of a harness library's ``<prefix>_info/create/destroy/error`` (the functions
    of sim/native/harness_common.h that every harness exports)."""
    pointer = ctypes.c_void_p
    for name, argtypes, restype in (
        ("info", [pointer], None),
        ("create", [ctypes.c_char_p], pointer),
        ("destroy", [pointer], None),
        ("error", [pointer], ctypes.c_char_p),
    ):
        function = getattr(lib, f"{prefix}_{name}")
        function.argtypes, function.restype = argtypes, restype


class _HarnessModel:
    """The persistent model of a loaded harness library (``<prefix>_*`` functions of
    sim/native/harness_common.h): created on `_open`, freed by `close`, on leaving a ``with``
    block or when collected; one run at a time (`_call` holds a lock)."""

    def _open(self, lib: ctypes.CDLL, prefix: str, library: Path) -> None:
        self._lib, self._prefix = lib, prefix
        self._lock = threading.Lock()
        handle = getattr(lib, f"{prefix}_create")(None)
        if not handle:
            raise RuntimeError(f"{prefix}_create failed for {library}")
        self._handle = handle
        self._finalizer = weakref.finalize(self, getattr(lib, f"{prefix}_destroy"), handle)

    def close(self) -> None:
        """Free the simulation model (also done when the object is garbage-collected)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, vcd_path, args, *, fresh: bool = False) -> tuple[int, bytes]:
        """Call ``<prefix>_run(handle, *args)``; (result, fatal message).

        With `vcd_path` or `fresh`, the run goes instead to a fresh model
        (``<prefix>_create(path)``, memories at their initial values), which writes the
        waveform (with `vcd_path`) and is destroyed afterwards.
        """
        lib, prefix = self._lib, self._prefix
        run, error = getattr(lib, f"{prefix}_run"), getattr(lib, f"{prefix}_error")
        with self._lock:
            if not self._finalizer.alive:
                raise RuntimeError(f"this {type(self).__name__} is closed")
            if vcd_path is None and not fresh:
                result = run(self._handle, *args)
                return result, error(self._handle) if result == _FATAL else b""
            path = None
            if vcd_path is not None:
                path = Path(vcd_path)
                if not path.parent.is_dir():
                    raise FileNotFoundError(f"no folder {path.parent} for the VCD file")
            model = getattr(lib, f"{prefix}_create")(None if path is None else os.fsencode(path))
            if not model:
                raise OSError(f"cannot write the VCD file {path}" if path else "create failed")
            try:
                result = run(model, *args)
                return result, error(model) if result == _FATAL else b""
            finally:
                getattr(lib, f"{prefix}_destroy")(model)
