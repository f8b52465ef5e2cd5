"""The conformance list is the certification contract: generated from the suites' permanent ids and checked in.

A suite test without an id, two tests sharing one, a required test removed or its id changed, or a case added or
gone: each makes `conformance-list --check` (run here for every current profile) fail with the diff and the command
that regenerates the file, so the change shows in review. The hostile cases edit a copy of the suites.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conformance.certify.profile import available_profiles, load_profile
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
RT001_UUID = "88b26a94-8401-442b-8919-9309992632c5"


def current_profiles() -> list[str]:
    """Packaged profiles no other packaged profile supersedes (a superseded one's tests may have left the suites)."""
    retired = {old for key in available_profiles() for old in load_profile(key).supersedes}
    return [key for key in available_profiles() if key not in retired]


def suites_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "suites"
    shutil.copytree(ROOT / "suites", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def check(suites: Path | None = None, profile: str = "vddk-7.0.3-v2") -> tuple[int, str]:
    args = ["conformance-list", "--profile", profile, "--check"] + (["--suites", str(suites)] if suites else [])
    result = run_cli(*args, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


def test_there_is_a_current_profile_with_a_list() -> None:
    assert current_profiles() == ["vddk-7.0.3-v2"]
    assert (ROOT / "conformance/data/certification/lists/vddk-7.0.3-v2.toml").is_file()


@pytest.mark.parametrize("profile", current_profiles())
def test_the_suites_agree_with_the_checked_in_list(profile: str) -> None:
    code, output = check(profile=profile)
    assert code == 0, output


def test_a_changed_uuid_is_a_diff_naming_the_regenerate_command(tmp_path: Path) -> None:
    suites = suites_copy(tmp_path)
    module = suites / "test_roundtrip.py"
    module.write_text(module.read_text().replace(RT001_UUID, "00000000-0000-4000-8000-000000000001"))
    code, output = check(suites)
    assert code == 1
    assert f'-uuid = "{RT001_UUID}"' in output and '+uuid = "00000000-0000-4000-8000-000000000001"' in output
    assert "vddk-conformance conformance-list --profile vddk-7.0.3-v2 --write" in output


def test_a_removed_required_test_is_a_diff_and_named(tmp_path: Path) -> None:
    suites = suites_copy(tmp_path)
    (suites / "test_f2_proxy_os.py").unlink()
    code, output = check(suites)
    assert code == 1 and "requires test(s) no suite carries: F2-001" in output, output
    assert '-name = "F2-001"' in output


def test_a_dropped_case_is_a_diff(tmp_path: Path) -> None:
    suites = suites_copy(tmp_path)
    conftest = suites / "conftest.py"
    conftest.write_text(conftest.read_text().replace('THICK_DATASTORES = ("VMFS",)', "THICK_DATASTORES = ()"))
    code, output = check(suites)
    assert code == 1 and '-    "nbd-VMFS-random-thick",' in output, output


def test_a_test_without_an_id_or_sharing_one_is_refused(tmp_path: Path) -> None:
    suites = suites_copy(tmp_path)
    module = suites / "test_roundtrip.py"
    text = module.read_text()
    module.write_text(re.sub(r'uuid="[0-9a-f-]+"', f'uuid="{RT001_UUID}"', text, count=2))
    code, output = check(suites)
    assert code == 2 and f"uuid {RT001_UUID} is shared by RT-001, RT-002" in output, output
    first = re.search(r"@pytest\.mark\.test_id\(\s*\"RT-001\".*?\)\n", text, re.S)
    assert first is not None
    module.write_text(text.replace(first.group(0), ""))
    code, output = check(suites)
    assert code == 2 and "test_full_backup_holds_exactly_what_the_guest_wrote" in output, output
    assert "a conformance test without a permanent id" in output


def test_a_malformed_identity_stops_a_run_in_one_line(tmp_path: Path) -> None:
    suites = suites_copy(tmp_path)
    module = suites / "test_roundtrip.py"
    module.write_text(module.read_text().replace(RT001_UUID, "not-a-uuid"))
    result = run_cli("run", "--suites", str(suites), "--reports", str(tmp_path / "r"), "-n", "0", "--collect-only")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert "test_id RT-001: uuid 'not-a-uuid' is not a lowercase canonical UUID" in output
