"""The simulated libvixDiskLib.so for partners' products: a C library with VixDiskLib's exports (`c/`) that
forwards every call over a Unix socket (`wire.py`) to an agent process (`agent.py`, `sessions.py`) hosting the
harness's simulated VixDiskLib, so an unmodified backup product meets the very library the suites judge.
"""
