"""The VixDiskLib facade (`api.py`) over two backends with one interface (`backend.py`): the simulated library
(`simulated/`, over the simulator's data plane) and VMware's libvixDiskLib through ctypes (`native/`)."""
