"""The training process's malloc settings: a block the size of a batch's activations comes from
the heap, not from fresh pages the kernel maps (and zeroes) at every allocation."""

from __future__ import annotations

import subprocess
import sys

import pytest

# a fresh process each: glibc's thresholds move with what a process has freed before
ALLOCATE = """
import ctypes, sys

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "kept":
    from mnistlab.training.allocator import keep_freed_memory
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd  # bytes in blocks mapped on their own
block = libc.malloc(20 << 20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")


def mapped_bytes(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", ALLOCATE, mode], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


@glibc
def test_a_20_mb_block_is_mapped_by_default_and_comes_from_the_heap_once_set() -> None:
    assert mapped_bytes("default") >= 20 << 20
    assert mapped_bytes("kept") == 0
