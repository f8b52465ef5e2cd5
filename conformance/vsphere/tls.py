"""TLS client contexts for connections authenticated by a pinned certificate thumbprint.

A context from `ssl.create_default_context()` loads the system's CA store, about 40 ms each time; a run logs in
and opens HTTPS connections thousands of times and trusts no CA on any of them (the thumbprint comparison after
the handshake is the authentication), so one context without a CA store serves them all.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def pinned_client_context() -> ssl.SSLContext:
    """TLS without CA or host-name checks: only for peers whose certificate the caller compares with a thumbprint
    (or that it reached through a session whose login did). Shared: a context is safe to use from many threads."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
