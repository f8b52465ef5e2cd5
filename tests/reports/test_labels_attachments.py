"""Allure labels are completed without duplicates; attachments hold the test's own calls and no secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from allure_commons import model2

from conformance.reports import attachments, labels
from conformance.vixdisklib.recorder import CallRecorder
from conformance.vixdisklib.types import ConnectParams, SessionCredentials, UidCredentials
from tests.reports.conftest import SECRET


def test_wanted_labels_come_from_the_catalog() -> None:
    want = labels.wanted("k4", workaround="proxy-on-vsan", sequence="backup")
    assert want.labels == {
        "epic": "Known Issues and Workarounds",
        "feature": "K4 HotAdd with a vSAN target and a proxy outside vSAN",
        "story": "backup",
    }
    assert want.tags == ["workaround:proxy-on-vsan"]
    assert want.links == [("vddk-7.0.3-release-notes#K4", "K4: HotAdd with a vSAN target and a proxy outside vSAN")]
    assert labels.wanted("Z9").labels == {} and labels.wanted(None, sequence="restore").labels == {"story": "restore"}


def test_complete_adds_only_what_is_missing() -> None:
    result = model2.TestResult(name="t", uuid="u")
    result.labels = [
        model2.Label("epic", "Known Issues and Workarounds"),
        model2.Label("tag", "workaround:proxy-on-vsan"),
    ]
    result.links = [model2.Link("link", "vddk-7.0.3-release-notes#K4", "K4")]
    labels.complete(result, labels.wanted("K4", workaround="proxy-on-vsan", sequence="backup"))
    labels.complete(result, labels.wanted("K4", workaround="proxy-on-vsan", sequence="backup"))
    names = [label.name for label in result.labels]
    assert sorted(names) == ["epic", "feature", "story", "tag"]
    assert len(result.links) == 1


def test_run_parameters_are_added_once() -> None:
    result = model2.TestResult(name="t", uuid="u")
    result.parameters = [model2.Parameter("transport", "'nbd'")]
    for _ in range(2):
        labels.add_parameters(result, labels.run_parameters("7.0.2", "7.0U3"))
    assert [(p.name, p.value) for p in result.parameters] == [
        ("transport", "'nbd'"), ("VDDK build", "7.0.2"), ("vSphere", "7.0U3"),
    ]  # fmt: skip


class Lib:
    def __init__(self) -> None:
        self.recorder = CallRecorder()


class Context:
    def __init__(self, lib: Lib) -> None:
        self.lib = lib


def factory(made: list[Lib]) -> Any:
    def make() -> Lib:
        made.append(Lib())
        return made[-1]

    return make


def test_libraries_are_found_directly_through_lib_and_in_a_factory_closure() -> None:
    session, made = Lib(), [Lib(), Lib()]
    found = attachments.libraries([session, Context(session), factory(made), "text", None])
    assert found == [session, *made]


def test_call_trace_is_the_slice_after_the_mark_and_new_libraries_in_full() -> None:
    session, fresh = Lib(), Lib()
    session.recorder.note("VixDiskLib_InitEx")
    session.recorder.note("VixDiskLib_Open")
    since = attachments.marks([session])
    session.recorder.note("VixDiskLib_Read", startSector=0)
    fresh.recorder.note("VixDiskLib_ConnectEx")
    trace = json.loads(attachments.call_trace([session, fresh], since) or "null")
    assert [[c["call"] for c in s["calls"]] for s in trace] == [["VixDiskLib_Read"], ["VixDiskLib_ConnectEx"]]
    assert attachments.call_trace([session], attachments.marks([session])) is None


def test_no_secret_reaches_the_call_trace() -> None:
    lib = Lib()
    with lib.recorder.call("VixDiskLib_ConnectEx", params=ConnectParams("esx", UidCredentials("root", SECRET))):
        pass
    with lib.recorder.call("VixDiskLib_ConnectEx", params=ConnectParams("esx", SessionCredentials(SECRET, key=SECRET))):
        pass
    lib.recorder.note("VixDiskLib_PrepareForAccess", password=SECRET, identity=f"id-{SECRET}")
    trace = attachments.call_trace([lib], {}, secrets=[SECRET]) or ""
    assert SECRET not in trace and '"userName": "root"' in trace
    assert "id-<redacted>" in trace  # a secret inside a harmless-looking argument is scrubbed as well


def test_the_init_ex_configuration_is_attached_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "vddk.conf"
    config.write_text(
        "# written by a test\ntmpDirectory = /tmp/x\nvixDiskLib.phoneHome.ProductName = Backup\n"
        f"vixDiskLib.some.Password = {SECRET}\napiToken = abc123\n"
    )
    lib = Lib()
    lib.recorder.note("VixDiskLib_InitEx", configFile=str(config))
    lib.recorder.note("VixDiskLib_InitEx", configFile=str(tmp_path / "gone.conf"))
    assert attachments.init_configs([lib]) == [config]
    text = attachments.sanitize_config(config.read_text(), secrets=[SECRET])
    assert SECRET not in text and "abc123" not in text
    assert "tmpDirectory = /tmp/x" in text and "ProductName = Backup" in text and "# written by a test" in text
    assert "vixDiskLib.some.Password = <redacted>" in text
