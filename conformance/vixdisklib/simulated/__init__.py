"""The simulated VixDiskLib: plays a VDDK build from the knowledge layer's facts over the simulated ESXi's
vSphere API and data plane, exactly as the native library talks to a real one."""
