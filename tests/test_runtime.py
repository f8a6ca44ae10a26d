import platform
import sys

from omnireid.runtime import tune_allocator


def test_tune_allocator_applies_exactly_on_glibc():
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is expected
