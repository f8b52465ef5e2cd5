"""The simulator's data plane: how disk data moves between the simulated VixDiskLib and the simulated ESXi.

It stands in for NFC on ESXi port 902 (nbd, nbdssl) and for HotAdd/SAN access: `server.DataPlane` runs
inside the simulator (`ctx.dataplane`), `client.DataPlaneClient` is what the library side uses, and
`protocol` holds the framing both share. Only the stdlib-only client side is imported here.
"""

from conformance.sim.dataplane.client import DataPlaneClient, ThumbprintMismatch, discover
from conformance.sim.dataplane.protocol import DataPlaneError

__all__ = ["DataPlaneClient", "DataPlaneError", "ThumbprintMismatch", "discover"]
