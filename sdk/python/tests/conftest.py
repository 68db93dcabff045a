"""Unit tests of the Python SDK: the package from this tree, and the
native library of the build tree unless SYSGATE_LIB says otherwise."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
BUILD_LIB = os.path.join(os.path.dirname(os.path.dirname(SDK)), "build",
                         "libsysgate.so")

sys.path.insert(0, SDK)
if "SYSGATE_LIB" not in os.environ and os.path.exists(BUILD_LIB):
    os.environ["SYSGATE_LIB"] = BUILD_LIB
