"""The process settings of long batch runs (pressmeter/runtime.py).

Each check runs in a fresh interpreter: glibc raises its mmap threshold by
itself once a large mapped block is freed, which earlier tests in this process
may well have done.
"""

import subprocess
import sys

PROBE = """
import ctypes, sys
from pressmeter.runtime import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert keep_freed_memory() is True
before = libc.mallinfo2().hblkhd
block = libc.malloc(8 * 2**20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


def mapped_bytes_for_an_8_mib_block(mode: str) -> int:
    """How many bytes glibc maps on their own to hold an 8 MiB block."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_by_default_glibc_maps_a_large_block_on_its_own() -> None:
    assert mapped_bytes_for_an_8_mib_block("default") >= 8 * 2**20


def test_tuned_a_large_block_comes_from_the_heap_that_keeps_freed_memory() -> None:
    assert mapped_bytes_for_an_8_mib_block("tuned") == 0


def test_batch_tuning_freezes_the_objects_that_exist_before_the_run() -> None:
    probe = (
        "import gc\n"
        "from pressmeter.runtime import tune_for_batch\n"
        "before = len(gc.get_objects())\n"
        "tune_for_batch()\n"
        "print(gc.get_freeze_count() >= before, len(gc.get_objects()) < before // 10)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]
