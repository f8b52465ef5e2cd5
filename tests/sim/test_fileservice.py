"""The simulated vCenter HTTP file service (/folder), driven over HTTPS as a client would."""

from __future__ import annotations

import http.client
import os
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from conformance.sim.instance import Simulator
from conformance.vsphere.connection import Endpoint, connect, disconnect

DC = "dc1"
DS = "vmfs-01"


def session_cookie(si: Any) -> str:
    """The `vmware_soap_session=...` pair pyVmomi holds after login, as samples send it."""
    return str(si._stub.cookie).split(";")[0]


def http_request(
    sim: Simulator,
    method: str,
    target: str,
    body: bytes | None = None,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, Any]:
    """One HTTPS request checked against the simulator's certificate: (status, body, headers)."""
    context = ssl.create_default_context(cafile=str(sim.cert_file))
    conn = http.client.HTTPSConnection(sim.host, sim.port, context=context, timeout=30)
    try:
        all_headers = dict(headers or {})
        if cookie:
            all_headers["Cookie"] = cookie
        conn.request(method, target, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


def folder_url(name: str, dc: str = DC, ds: str = DS) -> str:
    """/folder URL with the name percent-encoded once (what a single-encoding client sends)."""
    return f"/folder/{quote(name, safe='/')}?dcPath={quote(dc)}&dsName={quote(ds)}"


class Client:
    """A logged-in file service client of one simulator."""

    def __init__(self, sim: Simulator, si: Any) -> None:
        self.sim = sim
        self.cookie = session_cookie(si)

    def put(self, target: str, body: bytes) -> tuple[int, bytes]:
        status, data, _ = http_request(self.sim, "PUT", target, body, self.cookie)
        return status, data

    def get(self, target: str) -> tuple[int, bytes]:
        status, data, _ = http_request(self.sim, "GET", target, None, self.cookie)
        return status, data


@pytest.fixture
def client(sim: Simulator, si: Any) -> Client:
    return Client(sim, si)


@pytest.fixture
def client67() -> Iterator[Client]:
    """A client of a vSphere 6.7 GA simulator, whose file service decodes names twice (K6)."""
    with Simulator(vsphere="6.7") as sim:
        si = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
        try:
            yield Client(sim, si)
        finally:
            disconnect(si)


def test_put_then_get_round_trip(client: Client) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)  # several streaming chunks and a ragged end
    assert client.put(folder_url("backups/vm1/disk.bin"), body)[0] == 201
    assert client.get(folder_url("backups/vm1/disk.bin")) == (200, body)
    assert client.put(folder_url("backups/vm1/disk.bin"), b"shorter")[0] == 200
    assert client.get(folder_url("backups/vm1/disk.bin")) == (200, b"shorter")


def test_head_reports_size_without_body(client: Client) -> None:
    client.put(folder_url("h.bin"), b"x" * 1234)
    status, data, headers = http_request(client.sim, "HEAD", folder_url("h.bin"), cookie=client.cookie)
    assert (status, data, headers["Content-Length"]) == (200, b"", "1234")


@pytest.mark.parametrize(
    "name",
    [
        "with space.txt",
        "percent %20 sign.txt",
        "amp&and.txt",
        "plus+sign.txt",
        "hash#tag.txt",
        "[brackets] file.txt",
        "naïve-日本語.txt",
        "lit%41eral.txt",
    ],
)
def test_special_names_round_trip_on_7_0u3(client: Client, name: str) -> None:
    body = name.encode() * 3
    assert client.put(folder_url(f"odd/{name}"), body)[0] == 201
    assert client.get(folder_url(f"odd/{name}")) == (200, body)
    listing = client.get(folder_url("odd"))[1].decode()
    assert quote(name) in listing


def test_double_decoding_on_6_7_resolves_another_file(client: Client, client67: Client) -> None:
    """K6: a literal `%41` sent single-encoded as `%2541` is `%41` on 7.0 U3 but `A` on 6.7 GA."""
    url = folder_url("k6/report%41.bin")
    assert "report%2541.bin" in url
    for c in (client, client67):
        assert c.put(url, b"payload")[0] == 201
        assert c.get(url) == (200, b"payload")  # both find what they stored under that URL...
    # ...but 7.0 U3 stored the literal name, 6.7 stored `reportA.bin`
    assert client.get(folder_url("k6/report%41.bin"))[0] == 200
    assert client.get(folder_url("k6/reportA.bin"))[0] == 404
    assert client67.get(folder_url("k6/reportA.bin")) == (200, b"payload")
    # on 6.7 only a double-encoded URL reaches a file really named `report%41.bin`
    assert client67.put(folder_url("k6/" + quote("report%41.bin")), b"literal")[0] == 201
    assert client67.get(folder_url("k6/reportA.bin")) == (200, b"payload")
    assert client67.get(f"/folder/k6/report%252541.bin?dcPath={DC}&dsName={DS}") == (200, b"literal")


def test_names_without_escapes_agree_on_6_7(client67: Client) -> None:
    for name in ("with space.txt", "hash#tag.txt", "naïve.txt"):
        assert client67.put(folder_url(name), b"same")[0] == 201
        assert client67.get(folder_url(name)) == (200, b"same")


def test_no_session_cookie_is_401(client: Client) -> None:
    client.put(folder_url("secret.bin"), b"data")
    assert http_request(client.sim, "GET", folder_url("secret.bin"))[0] == 401
    assert http_request(client.sim, "PUT", folder_url("other.bin"), b"data")[0] == 401
    assert http_request(client.sim, "GET", folder_url("secret.bin"), cookie='vmware_soap_session="forged"')[0] == 401
    assert client.get(folder_url("other.bin"))[0] == 404


def test_unknown_datastore_or_datacenter_is_404(client: Client) -> None:
    status, body = client.get(folder_url("x.bin", ds="no-such-ds"))
    assert status == 404 and b"no-such-ds" in body and body.count(b"\n") == 1
    status, body = client.get(folder_url("x.bin", dc="no-such-dc"))
    assert status == 404 and b"no-such-dc" in body
    assert client.put(folder_url("x.bin", ds="no-such-ds"), b"abc")[0] == 404
    assert client.get(folder_url("missing.bin"))[0] == 404


@pytest.mark.parametrize(
    "target",
    [
        f"/folder/../escape.bin?dcPath={DC}&dsName={DS}",
        f"/folder/a/../../escape.bin?dcPath={DC}&dsName={DS}",
        f"/folder/%2e%2e/%2e%2e/escape.bin?dcPath={DC}&dsName={DS}",
        f"/folder/..%2f..%2fnfs-01%2fescape.bin?dcPath={DC}&dsName={DS}",
    ],
)
def test_path_traversal_is_refused(client: Client, target: str) -> None:
    assert client.put(target, b"evil")[0] == 400
    assert client.get(target)[0] == 400
    assert not list(client.sim.state_dir.rglob("escape.bin"))


def test_full_datastore_is_507_and_leaves_nothing(client: Client) -> None:
    client.sim.set_datastore_free_space(DS, 1000)
    status, body = client.put(folder_url("full/big.bin"), b"z" * 4096)
    assert status == 507 and b"Insufficient Storage" in body
    assert client.get(folder_url("full/big.bin"))[0] == 404
    assert client.get(folder_url("full"))[0] == 404  # not even the parent folder
    assert client.put(folder_url("small.bin"), b"s" * 900)[0] == 201  # what fits still fits


def test_space_is_charged_and_released_on_overwrite(client: Client, content: Any) -> None:
    client.sim.set_datastore_free_space(DS, 10_000)
    assert client.put(folder_url("a.bin"), b"a" * 6000)[0] == 201
    assert client.put(folder_url("b.bin"), b"b" * 6000)[0] == 507  # 4000 left
    assert client.put(folder_url("a.bin"), b"a" * 1000)[0] == 200  # shrinking gives 5000 back
    assert client.put(folder_url("b.bin"), b"b" * 6000)[0] == 201
    assert client.sim.ctx is not None
    free = {ds.name: ds.summary.freeSpace for ds in content.rootFolder.childEntity[0].datastore}
    assert free[DS] == 10_000 - 7000


def test_disk_of_a_vm_is_locked_for_writes(client: Client, vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    disk = next(
        d for d in vm.config.hardware.device if hasattr(d.backing, "fileName") and d.backing.fileName.endswith(".vmdk")
    )
    relative = disk.backing.fileName.split("] ", 1)[1]
    assert client.put(folder_url(relative), b"overwrite")[0] == 409
    status, descriptor = client.get(folder_url(relative))
    assert status == 200 and b"createType" in descriptor
