"""The SOAP endpoint as unmodified pyVmomi sees it: versions, sessions, pinning, typed faults, hooks."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any

import pytest
from pyVim import connect as pyvim_connect
from pyVmomi import SoapAdapter, vim, vmodl

from conformance.sim.instance import Simulator
from conformance.vsphere.connection import (
    Endpoint,
    PinMismatchError,
    VsphereConnectError,
    connect,
    negotiate_version,
)


def https(sim: Simulator) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(sim.host, sim.port, context=ssl.create_default_context(cafile=sim.cert_file))


@pytest.mark.parametrize(
    ("vsphere", "api_version", "version_line"),
    [
        ("6.5", "6.5", "6.5.0"),
        ("6.7U1", "6.7.1", "6.7.0"),
        ("7.0U3", "7.0.3.0", "7.0.3"),
        ("8.0", "8.0.0.0", "8.0.0"),
        ("M16", "7.0.3.0", "7.0.3"),
    ],
)
def test_about_and_api_version_follow_the_vsphere_profile(vsphere: str, api_version: str, version_line: str) -> None:
    with Simulator(vsphere=vsphere) as sim:
        si = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
        about = si.RetrieveContent().about
        assert (about.apiVersion, about.version, about.apiType) == (api_version, version_line, "VirtualCenter")
        assert sim.profile.build in about.fullName
        pyvim_connect.Disconnect(si)


def test_version_document_lists_the_profile_version_first(sim: Simulator) -> None:
    conn = https(sim)
    conn.request("GET", "/sdk/vimServiceVersions.xml")
    body = conn.getresponse().read().decode()
    assert body.index("<version>7.0.3.0</version>") < body.index("<version>6.7.3</version>")
    assert negotiate_version(Endpoint(sim.host, sim.port, sim.thumbprint)) == "vim.version.v7_0_3_0"


def test_smartconnect_negotiates_with_the_server(sim: Simulator) -> None:
    si = pyvim_connect.SmartConnect(
        host=sim.host,
        port=sim.port,
        user=sim.user,
        pwd=sim.password,
        sslContext=ssl.create_default_context(cafile=sim.cert_file),
    )
    assert si.RetrieveContent().about.apiVersion == "7.0.3.0"
    pyvim_connect.Disconnect(si)


def test_wrong_password_raises_invalid_login(sim: Simulator) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        pyvim_connect.Connect(
            host=sim.host,
            port=sim.port,
            user=sim.user,
            pwd="not-the-password",
            thumbprint=sim.thumbprint,
            sslContext=ssl.create_default_context(),
            version="vim.version.v7_0_3_0",
        )
    with pytest.raises(VsphereConnectError, match=r"login .* refused"):
        connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, "not-the-password")


def test_a_wrong_thumbprint_is_refused(sim: Simulator) -> None:
    wrong = ":".join(["AB"] * 20)
    with pytest.raises(PinMismatchError, match="does not match thumbprint"):
        connect(Endpoint(sim.host, sim.port, wrong), sim.user, sim.password)
    with pytest.raises(Exception, match=r"[Tt]humbprint"):
        pyvim_connect.Connect(
            host=sim.host,
            port=sim.port,
            user=sim.user,
            pwd=sim.password,
            thumbprint=wrong,
            sslContext=ssl.create_default_context(),
            version="vim.version.v7_0_3_0",
        )


def anonymous_stub(sim: Simulator) -> Any:
    return SoapAdapter.SoapStubAdapter(
        host=sim.host,
        port=sim.port,
        version="vim.version.v7_0_3_0",
        thumbprint=sim.thumbprint,
        sslContext=ssl.create_default_context(),
    )


def test_calls_without_a_session_raise_not_authenticated(sim: Simulator) -> None:
    content = vim.ServiceInstance("ServiceInstance", anonymous_stub(sim)).RetrieveContent()
    assert content.about.apiVersion == "7.0.3.0"
    with pytest.raises(vim.fault.NotAuthenticated):
        _ = content.rootFolder.childEntity


def test_logout_ends_the_session(si: Any) -> None:
    content = si.RetrieveContent()
    content.sessionManager.Logout()
    with pytest.raises(vim.fault.NotAuthenticated):
        _ = content.rootFolder.childEntity


def test_current_session_names_the_user(si: Any, sim: Simulator) -> None:
    assert si.RetrieveContent().sessionManager.currentSession.userName == sim.user


def test_unset_properties_read_as_none_and_empty_lists(content: Any, vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    assert vm.parentVApp is None
    assert vm.snapshot is None
    assert list(vm.network) == []


def test_a_deleted_object_raises_managed_object_not_found(si: Any, sim: Simulator) -> None:
    ghost = vim.VirtualMachine("vm-does-not-exist", si._stub)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        _ = ghost.name


def test_an_unsimulated_method_raises_method_not_found(content: Any) -> None:
    with pytest.raises(vmodl.fault.MethodNotFound):
        content.rootFolder.CreateDatacenter(name="dc2")


def test_soap_latency_hook_delays_calls(si: Any, sim: Simulator) -> None:
    content = si.RetrieveContent()
    sim.faults.update(soap_latency=0.2)
    started = time.monotonic()
    _ = content.rootFolder.name
    assert time.monotonic() - started >= 0.2


def test_dropped_connection_hook_closes_the_next_connection(sim: Simulator) -> None:
    sim.faults.update(drop_connections=1)
    first = https(sim)
    with pytest.raises((OSError, http.client.HTTPException)):
        first.request("GET", "/sdk/vimServiceVersions.xml")
        first.getresponse().read()
    second = https(sim)
    second.request("GET", "/sdk/vimServiceVersions.xml")
    assert second.getresponse().status == 200


def test_fault_hooks_over_http_need_a_session_and_valid_names(si: Any, sim: Simulator) -> None:
    conn = https(sim)
    conn.request("POST", "/sim/faults", body=b'{"disk_latency": 0.01}')
    response = conn.getresponse()
    assert response.status == 401 and b"log in first" in response.read()
    cookie = si._stub.cookie
    conn.request("POST", "/sim/faults", body=b'{"disk_latency": 0.01}', headers={"Cookie": cookie})
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["disk_latency"] == 0.01
    conn.request("POST", "/sim/faults", body=b'{"no_such_hook": 1}', headers={"Cookie": cookie})
    response = conn.getresponse()
    assert response.status == 400 and b"unknown fault hook" in response.read()
    conn.request(
        "POST", "/sim/faults", body=b'{"datastore_free_space": {"vmfs-01": 1048576}}', headers={"Cookie": cookie}
    )
    state = json.loads(conn.getresponse().read())
    assert state["datastore_free_space"]["vmfs-01"] == 1048576
