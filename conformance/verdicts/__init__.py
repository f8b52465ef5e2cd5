"""The harness's own verdicts on a backup application: what it observes itself (bytes it reads back, the
server's view through pyVmomi, the VixDiskLib call trace), never what the application reports about itself.

`digest` (whole-disk digests), `image` (the backup image handed over), `restored` (a restored VM's disks read
back), `trace` (what the call trace shows was read or left open), `cleanup` (what the server shows is left),
`job` (back up, clean up, check clean: the step most suites share).
"""
