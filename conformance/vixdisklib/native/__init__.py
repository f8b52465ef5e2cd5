"""The ctypes backend of the VixDiskLib facade: VMware's libvixDiskLib.so.N loaded from a --vddk-libdir.

Small single-job modules, in the manner of nbdkit's VDDK plugin: `abi` (struct layouts per major version,
callback types), `symbols` (prototypes; required vs optional), `loader` (finding and loading the library),
`callbacks` (log and completion callbacks into Python), `params` (ConnectParams in C memory), `library`
(the backend class) and `mntapi` (libvixMntapi.so.N, when the kit has it).
"""
