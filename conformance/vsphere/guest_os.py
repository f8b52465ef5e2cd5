"""The guest OS the server reports for a VM: what decides whether VDDK supports HotAdd in a proxy (F2)."""

from __future__ import annotations

from typing import Any


def reported_guest_os(vm: Any) -> str:
    """The running guest's detailed OS text (VMware Tools) when there is one, else the configured guest OS."""
    guest = getattr(vm, "guest", None)
    text = getattr(guest, "guestFullName", None) if guest is not None else None
    config = getattr(vm, "config", None)
    return str(text or (config.guestFullName if config is not None else "") or "")
