"""Peak device memory of a jitted program, predicted from XLA's buffer assignment before it runs.

``predict_peak_bytes(fn, *args)`` lowers and compiles ``fn`` for the shapes of ``args`` (arrays,
tracers or ``jax.ShapeDtypeStruct``; nothing is executed) and reads
``compiled.memory_analysis()``: arguments + outputs + temporaries - aliased bytes, the memory
XLA allocates for one call.

On the CPU backend the prediction compiles with XLA's YNNPACK fusions switched off
(``xla_cpu_experimental_ynn_fusion_type=""``): a YNNPACK fusion keeps the intermediates inside it
(e.g. an attention matrix between its two matmuls) out of the buffer assignment, so
``memory_analysis`` of the default executable misses them. Measured with ViTMatte-S on one
1024² image (fresh process, weights resident): the default executable reports 400 MiB of
temporaries and its call grows the RSS by 981 MiB; with the fusions off it reports 816 MiB and
the call grows the RSS by 846 MiB. The tiled procedure therefore compiles the executable that
runs under a budget with the same options (``accounted_compile``, default on; see tiled.py):
with XLA's default executable the prediction stayed below the RSS growth of attention models (by
17% for that forward, 26% for the tiled 4096² run of ``bench/tiled.py``); for convolutional
models it is within 10% either way (``tests/inference/test_tiled.py``).

What the figure leaves out: memory XLA:CPU's runtime mallocs outside the buffer assignment
(Eigen's convolution packing blocks: the tiled ViTMatte-S at 2048², tile 768, mallocs one of
1368 MiB for its 768² conv, nearly all of it never touched on this 2-core machine) and the
allocator's hold on freed blocks. glibc's ``malloc`` raises its mmap threshold (up to 32 MiB)
each time a mapped block is freed, so later transient blocks below it come from its arenas and
stay resident once freed: that 2048² call grew the RSS by 485-505 MiB for a predicted 389 MiB,
67-87 MiB of it free arena memory (``mallinfo2``). ``return_freed_blocks`` fixes the threshold
(which also turns the raise off); the tiled procedure calls it when it runs under a budget
(1 MiB: the same call grows the RSS by 419-424 MiB, -7%, +3% run time; 128 KiB: 406 MiB, -4%,
+13% run time; ``bench/tiled.py big``, bench/RESULTS.md session 9).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any, Callable

import jax

MIB = 2**20
# XLA:CPU debug option that, set to "", keeps every intermediate a buffer XLA accounts for.
CPU_ACCOUNTED_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (has ``mallopt`` and ``mallinfo2``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.mallinfo2  # noqa: B018 -- AttributeError outside glibc
    except (OSError, AttributeError):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


def malloc_free_held_bytes() -> int | None:
    """Free bytes glibc's arenas hold (``mallinfo2().fordblks``): resident memory that is no
    buffer's; None without glibc."""
    libc = glibc()
    return None if libc is None else int(libc.mallinfo2().fordblks)


def return_freed_blocks(threshold_kib: int) -> bool:
    """Makes ``malloc`` serve blocks of ``threshold_kib`` KiB and more by mmap, so that freeing
    them returns the memory to the OS (see the module docstring); process-wide.

    A no-op for 0 or without glibc. Returns whether the threshold was set.
    """
    libc = glibc()
    if threshold_kib <= 0 or libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold_kib) * 1024))


def abstract(tree: Any) -> Any:
    """Arrays or tracers -> ``jax.ShapeDtypeStruct`` of the same shape and dtype (leaves only)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def compiler_options(backend: str | None = None) -> dict[str, str]:
    """The compile options under which ``memory_analysis`` sees every intermediate."""
    backend = backend or jax.default_backend()
    return dict(CPU_ACCOUNTED_OPTIONS) if backend == "cpu" else {}


def predict_peak_bytes(fn: Callable, *args: Any) -> int:
    """Bytes XLA allocates for one call of ``jax.jit(fn)(*args)``: arguments, outputs, temps.

    Args:
      fn: a jit-able function of ``args``.
      *args: pytrees of arrays, tracers or ``jax.ShapeDtypeStruct`` (only shapes are used).

    Returns:
      argument + output + temp - alias bytes of the compiled program (the figure of the compile
      with every intermediate accounted for, see the module docstring).
    """
    compiled = jax.jit(fn).lower(*abstract(args)).compile(compiler_options=compiler_options())
    stats = compiled.memory_analysis()
    if stats is None:
        raise RuntimeError(
            f"the {jax.default_backend()} backend gives no memory_analysis(); "
            "config.inference.kwargs.memory_budget_mb cannot be used there, set a tile instead"
        )
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
