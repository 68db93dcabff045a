"""The exception type of the sysgate Python SDK."""


class SysgateError(RuntimeError):
    """sysgate could not do what was asked.

    Raised when the native library (libsysgate) cannot be found or lacks a
    function, when the sysgate binary cannot be found, when a worker is run
    outside sysgate, and for failures of the C SDK that are not a handler's
    own. Argument mistakes raise ``TypeError``/``ValueError`` instead.
    """
