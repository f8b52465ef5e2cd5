"""One real, small run (K5, the F1 suite and one restore round trip on VDDK 7.0.2): what the plugin puts into
allure-results."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

RUN_ID = "k5-f1-702"
RESTORE = "roundtrip and restore_to_the_original and nbdssl-VMFS-random"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--reports", str(reports), "--run-id", RUN_ID,
         "--vddk-build", "7.0.2", "-n", "0", "-k", f"k5 or f1_nfc or ({RESTORE})"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return reports / RUN_ID


def allure_results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (run_dir / "allure-results").glob("*-result.json")]


def test_every_result_has_one_epic_feature_release_note_link_and_run_parameters(run_dir: Path) -> None:
    results = allure_results(run_dir)
    assert len(results) == len(json.loads((run_dir / "summary.json").read_text())["tests"]) >= 15
    for result in results:
        names = Counter(label["name"] for label in result["labels"])
        assert names["epic"] == 1 and names["feature"] == 1, result["name"]
        assert [link["url"] for link in result["links"] if "release-notes#" in link["url"]], result["name"]
        parameters = {p["name"]: p["value"] for p in result["parameters"]}
        assert parameters["VDDK build"] == "7.0.2" and parameters["vSphere"] == "7.0U3"
    features = [(r["status"], next(lb["value"] for lb in r["labels"] if lb["name"] == "feature")) for r in results]
    assert ("skipped", "F1 Configurable NFC AIO buffers") in features  # not applicable on 7.0.2, labelled all the same


def test_call_trace_and_init_ex_configuration_are_attached_without_secrets(run_dir: Path) -> None:
    folder = run_dir / "allure-results"
    attached = [a for r in allure_results(run_dir) for a in r.get("attachments", [])]
    traces = [a for a in attached if a["name"] == "VixDiskLib call trace"]
    configs = [a for a in attached if a["name"].startswith("InitEx configuration")]
    assert traces and configs
    calls = json.loads((folder / traces[0]["source"]).read_text())[0]["calls"]
    assert any(c["call"] == "VixDiskLib_ConnectEx" for c in calls)
    for path in folder.iterdir():
        text = path.read_text(errors="replace").lower()
        assert '"password"' not in text and "password =" not in text, path.name


def test_categories_and_environment_are_written(run_dir: Path) -> None:
    folder = run_dir / "allure-results"
    names = [c["name"] for c in json.loads((folder / "categories.json").read_text())]
    # "Lab problem" has two rules: by the failure's message, and by the data-plane line the run adds (D4)
    assert names == ["Known issue", "Lab problem", "Lab problem", "Product defect", "Harness defect"]
    assert "vddk.build=7.0.2" in (folder / "environment.properties").read_text()


def test_a_restore_attaches_the_disk_digests_it_compared(run_dir: Path) -> None:
    folder = run_dir / "allure-results"
    restores = [r for r in allure_results(run_dir) if "restore_to_the_original" in r["fullName"]]
    assert len(restores) == 1 and restores[0]["status"] == "passed"
    [attachment] = [a for a in restores[0]["attachments"] if a["name"] == "Disk digests compared"]
    compared = json.loads((folder / attachment["source"]).read_text())
    assert len(compared) == 1 and all(c["match"] and c["expected"] == c["actual"] for c in compared)
    assert compared[0]["what"] == "restored disk" and compared[0]["method"] == "every byte read"
    others = [r for r in allure_results(run_dir) if r["fullName"] != restores[0]["fullName"]]
    assert not [a for r in others for a in r.get("attachments", []) if a["name"] == "Disk digests compared"]
