"""Layer 2's guards for numpy, the operator's opt-in (``Limits.allow_numpy``).

Theory of operation
-------------------
numpy checks most of what a bot can ask of it (bounds, strides against the memory they cover,
object fields that overlap, views that would reinterpret objects, the writeable flag of read-only
memory), and the restricted runtime's rules still apply to it (no dunders, no ``_`` attributes of
numpy's classes, no module objects, no class of numpy's written to). What is left are the public
routes that hand out memory the bot can free, or that read the caller's frame; numpy 1.24, as
measured:

* ``ndarray(shape, dtype, buffer=...)`` (and ``recarray(buf=...)``, ``chararray(buffer=...)``,
  which pass theirs on) releases the buffer it was given at once: resizing the ``bytearray`` or
  ``array.array`` afterwards leaves the array on freed memory, to read and write anywhere.
  (``frombuffer``, ``asarray`` and ``array`` keep the buffer exported: its owner cannot resize it.)
  So the bot's ``numpy.ndarray`` is a stand-in (:func:`ndarray_stand_in`): ``isinstance``,
  ``issubclass``, ``type(a) is numpy.ndarray`` and its class attributes work, a call without a
  buffer makes an array, a call with a buffer, an offset or strides is refused, and it cannot be
  subclassed; ``type()`` of an array gives the stand-in (``_guards.STAND_INS``). ``recarray`` and
  ``chararray`` are left out of the proxy (``restricted.DENIED_MEMBERS``).
* ``a.resize(..., refcheck=False)`` reallocates the array under its views: every load of the
  attribute ``resize`` goes through :meth:`NumpyGuards.checked_attribute`, which hands out a
  ``resize`` that refuses ``refcheck``.
* assigning ``a.data`` frees the array's memory under its views: :meth:`NumpyGuards.store_guard`
  refuses it by name. The bot stores to numpy's objects only the attributes listed in
  :meth:`NumpyGuards.open_attributes` (an array's ``shape``, ``flat``, ``real``, ``imag``, its
  ``flags.writeable``, a generator's ``bit_generator.state``), as to any object not its own.
* ``BitGenerator.capsule`` points into a generator without keeping it alive (a ``Generator``
  made from it once the generator is gone calls function pointers read from freed memory): the
  attribute name is refused (``restricted.NUMPY_DENIED_ATTRIBUTES``), with ``ctypes`` and
  ``cffi``, which reach the same pointers.
* ``bmat``, ``r_`` and ``c_`` look names up in their caller's frame (``sys._getframe().f_back``):
  handed as a callback to a stdlib function written in Python, they read that function's globals.
  They are left out of the proxy, as are the file readers and writers, the docstring writers
  (``add_newdoc`` imports any module by name) and numpy's test runners.

Standard library only at import: the restricted runtime hands numpy in, and imports it only
when the operator allows it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

from ._guards import STAND_INS

__all__ = ["NumpyGuards", "ndarray_stand_in"]

_UNSAFE_STORES = frozenset({"data"})  # ndarray attributes whose setter frees memory that views use
# The attributes of numpy's objects a bot may set, by class: setters numpy checks (a shape of the
# same size, values copied in, a flag it may only lower on memory it does not own, a state dict).
_OPEN_STORES = {
    "ndarray": frozenset({"flat", "imag", "real", "shape"}),
    "flagsobj": frozenset({"writeable"}),
    "bit_generators": frozenset({"state"}),
}


def ndarray_stand_in(real: type) -> type:
    """The bot's ``numpy.ndarray``: the real class for checks, a constructor without a buffer."""

    class NdarrayGuard(type):
        def __call__(cls, shape: Any, dtype: Any = float, buffer: Any = None, offset: Any = 0, strides: Any = None,
                     order: Any = None) -> Any:
            if buffer is not None or strides is not None or not (type(offset) is int and offset == 0):
                raise TypeError("numpy.ndarray() over a buffer is not available in the arena (it lets the buffer "
                                "be freed under the array): use numpy.frombuffer()")
            return real(shape, dtype, None, 0, None, order)

        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, real)

        def __subclasscheck__(cls, sub: Any) -> bool:
            return sub is cls or issubclass(sub, real)

        def __getattr__(cls, name: str) -> Any:  # the class attributes: ndarray.shape, ndarray.sum...
            if name.startswith("_"):
                raise AttributeError(f"class 'numpy.ndarray' has no attribute {name!r} in the arena")
            return getattr(real, name)

        def __repr__(cls) -> str:
            return repr(real)

    class ndarray(metaclass=NdarrayGuard):  # noqa: N801 - numpy's name
        def __init_subclass__(cls, **kwargs: Any) -> None:
            raise TypeError("subclasses of numpy.ndarray are not available in the arena")

    return ndarray


def _resize_with_refcheck(method: Callable[..., Any]) -> Callable[..., Any]:
    def resize(*new_shape: Any, refcheck: Any = True) -> Any:
        if refcheck is not True:
            raise ValueError("ndarray.resize(refcheck=False) is not available in the arena: it frees memory that "
                             "views of the array still use")
        return method(*new_shape)  # refcheck defaults to True; a bot's object never reaches numpy's own check

    return resize


class NumpyGuards:
    """The numpy rules of one restricted environment, for the numpy module it was given."""

    def __init__(self, numpy: Any) -> None:
        self.numpy = numpy
        self.real_ndarray: type = numpy.ndarray
        self.resize_method = numpy.ndarray.resize
        self.ndarray = ndarray_stand_in(self.real_ndarray)
        STAND_INS[self.real_ndarray] = self.ndarray

    def is_own_import(self, name: str, fromlist: object) -> bool:
        """Whether an ``__import__`` call is numpy's C code asking again for a module of its own.

        numpy's C methods import their Python halves lazily (``a.sum()``, ``repr(a)``, its error
        classes) with ``PyImport_Import``, which calls the ``__import__`` of the running frame's
        builtins (the bot's, when the bot called the method) with an empty *list* as
        ``fromlist`` (an import statement passes a tuple or None, and the bot cannot name
        ``__import__``), for its side effect only: it then takes the module from ``sys.modules``
        itself, so nothing returned reaches the bot. Such a call is let through, without
        importing anything, when the module is numpy's and already loaded.
        """
        is_numpys = name == "numpy" or name.startswith("numpy.")
        return type(fromlist) is list and not fromlist and is_numpys and name in sys.modules

    def overrides(self) -> dict[str, dict[str, Any]]:
        """Members of the numpy proxies replaced by guarded versions."""
        return {"numpy": {"ndarray": self.ndarray}}

    def checked_attribute(self, obj: Any, name: str) -> Any:
        """``obj.name`` for the names whose numpy version needs a guard (``resize``).

        Judged by the value, not by ``obj``: ``a.resize``, ``numpy.ndarray.resize``,
        ``numpy.matrix.resize`` and ``super(numpy.matrix, m).resize`` all give numpy's method.
        """
        value = getattr(obj, name)
        if name == "resize" and self._is_numpy_resize(value):
            return _resize_with_refcheck(value)
        return value

    def open_attributes(self) -> dict[type, frozenset[str] | None]:
        """The classes of numpy's whose instances the bot may store to, each with the names."""
        random = self.numpy.random
        generators = (random.MT19937, random.PCG64, random.PCG64DXSM, random.Philox, random.SFC64)
        opened: dict[type, frozenset[str] | None] = {
            self.real_ndarray: _OPEN_STORES["ndarray"], type(self.numpy.zeros(0).flags): _OPEN_STORES["flagsobj"],
        }
        opened.update((generator, _OPEN_STORES["bit_generators"]) for generator in generators)
        return opened

    def store_guard(self, writable: Callable[..., Any]) -> Callable[..., Any]:
        """The environment's store guard ``writable``, and first no store that makes numpy free
        memory still in use (named, for a clear refusal).

        Raises:
            TypeError: an unsafe attribute of an array.
        """

        def guarded(obj: Any, name: str | None = None) -> Any:
            if name in _UNSAFE_STORES and isinstance(obj, self.real_ndarray):
                raise TypeError(f"assigning numpy.ndarray.{name} is not available in the arena: it frees the array's "
                                "memory under its views")
            return writable(obj, name)

        return guarded

    def _is_numpy_resize(self, value: Any) -> bool:
        if value is self.resize_method:  # unbound, from the class or a subclass
            return True
        # Bound to an array (a C method: a Python one is the bot's own, whose super() call comes here too).
        return isinstance(value, types.BuiltinMethodType) and isinstance(value.__self__, self.real_ndarray)
