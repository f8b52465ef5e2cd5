"""What the simulated library of one build refuses because VMware does not support it (F2, C4), as knowledge.

The decisions come from the harness's knowledge modules (the HotAdd proxy matrix of
``conformance.knowledge.proxy_support``, the compatibility policy of
``conformance.knowledge.versions.vddk_supports``); the facts they are applied to come from the server, as the real
library learns them: the proxy VM's guest OS through
the vSphere API, the server's release from ``content.about``. The simulator reads knowledge; knowledge never
reads the simulator.
"""

from __future__ import annotations

from typing import Any

from conformance.knowledge.proxy_support import find_os, proxy_supported
from conformance.knowledge.versions import vddk_supports
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vsphere.about import ServerVersionError, server_version
from conformance.vsphere.guest_os import reported_guest_os


def proxy_guest_os(proxy: Any) -> str:
    """The guest OS text the server reports for the proxy VM (the detailed one while it runs)."""
    return reported_guest_os(proxy)


def hotadd_refusal(build: str, proxy: Any) -> str | None:
    """F2: why a library of ``build`` cannot use HotAdd in this proxy VM, or None when it can.

    The real library does not grade the proxy's OS; on an OS its build does not support, HotAdd cannot mount
    the disk in the proxy ("Cannot use mode hotadd ..." in its log) and Open goes on to the next transport in
    the caller's list. So this is a transport refusal, not an error of its own: "hotadd:nbdssl" falls back to
    nbdssl, and "hotadd" alone fails the way an exhausted transport list fails (the simulator's
    VIX_E_NOT_SUPPORTED, as for every other transport that cannot be used). vddk-facts.md documents no error
    number specific to an unsupported proxy OS; a guest OS the matrix does not know is not refused (no
    knowledge, no behaviour).
    """
    os_text = proxy_guest_os(proxy)
    if not os_text or find_os(os_text) is None:
        return None
    support = proxy_supported(os_text, build)
    return None if support else f"HotAdd cannot be used in proxy VM {proxy.name}: {support.reason}"


def check_server(build: str, about: Any, call: str) -> None:
    """C4: refuse ConnectEx when the server's own release is outside what ``build`` supports.

    Chosen symptom: ConnectEx fails with VIX_E_NOT_SUPPORTED (6), naming the build and the server's release.
    The library negotiates the vSphere API version with the server at ConnectEx (ConnectParams.vimApiVer), so
    an unsupported pair fails there, for every transport alike, before any disk is opened; the release notes'
    policy is about the pair, not a transport, which a data-plane symptom would misrepresent.
    """
    try:
        version = server_version(about)
    except ServerVersionError as exc:
        raise VixError(VixCode.NOT_SUPPORTED, call, f"unknown server release: {exc}") from None
    support = vddk_supports(build, version)
    if not support:
        raise VixError(VixCode.NOT_SUPPORTED, call, f"VDDK {build} does not support {version.label}: {support.reason}")
