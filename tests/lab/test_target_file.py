"""Target files: parsing with one-line errors, the preflight against a served simulator, and the done-when run:
the round-trip suites green through the real-target path (file, pinned thumbprint, password from the
environment, preflight, allow-list)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conformance import exit_codes
from conformance.lab.target_file import TargetFileError, load_target_file
from conformance.lab.targets import file_target
from tests.lab.conftest import GUEST_ENV, PASSWORD_ENV, SimServer, run_cli, target_text, write_target

INFO = {"host": "127.0.0.1", "port": 4430, "thumbprint": ":".join(["AB"] * 20), "user": "u", "vsphere": "7.0U3"}


def test_a_complete_file_becomes_a_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "pw-from-env")
    monkeypatch.setenv("VDDKC_LAB_TEST_GUEST", "guest-pw")
    target = file_target(write_target(tmp_path / "lab.toml", INFO), read_server=False)
    assert target.password == "pw-from-env" and target.guest.password == "guest-pw"
    assert target.endpoint.thumbprint == INFO["thumbprint"] and target.default_proxy == "proxy-rhel83"
    assert "target-vmfs" in target.allow_vms and target.target_vms["VMFS"] == "target-vmfs"
    assert target.backend == "simulated" and "physical-proxy" in target.capabilities
    assert "pw-from-env" not in repr(target) and "guest-pw" not in repr(target)
    assert "pw-from-env" not in json.dumps(target.describe())


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"credentials": '[credentials]\nuser = "u"\npassword = "hunter2"\n'}, "credentials.password", "never"),
        ({"server": '[server]\nhost = "h"\ndatacenter = "dc1"\n'}, "server.thumbprint", "missing"),
        ({"server": '[server]\nhost = "h"\nthumbprint = "xyz"\ndatacenter = "dc1"\n'}, "server.thumbprint", "not a"),
        (
            {
                "server": f'[server]\nhost = "h"\nthumbprint = "{INFO["thumbprint"]}"\n'
                'datacenter = "d"\ninsecure = true\n'
            },
            "server.insecure",
            "always verified",
        ),
        ({"head": 'nmae = "x"\n'}, "nmae", "unknown key"),
        ({"credentials": '[credentials]\nuser = "u"\n'}, "credentials.password_env", "exactly one"),
        ({"vms": '[vms]\nallow = ["a"]\nsources = { VMFS = "b" }\n'}, "vms.sources.VMFS", "not in vms.allow"),
        ({"vms": "[vms]\nallow = []\n"}, "vms.allow", "empty"),
        ({"vddk": '[vddk]\nbackend = "native"\n'}, "vddk.libdir", "required"),
        ({"vddk": '[vddk]\nbackend = "fast"\n'}, "vddk.backend", "unknown backend"),
        ({"vddk": '[vddk]\ntransports = ["carrier-pigeon"]\n'}, "vddk.transports", "unknown transport"),
        ({"head": 'capabilities = ["fault-injection"]\n'}, "capabilities", "fault-injection"),
        ({"server": "[server\n"}, "not valid TOML", ""),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, overrides: dict[str, str], key: str, words: str
) -> None:
    path = write_target(tmp_path / "bad.toml", INFO, **overrides)
    with pytest.raises(TargetFileError) as caught:
        load_target_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and key in message and words in message
    assert "fix:" in message or "TOML" in message
    assert "hunter2" not in message


def test_a_missing_password_variable_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(TargetFileError, match=rf"credentials.password_env: environment variable {PASSWORD_ENV}"):
        file_target(write_target(tmp_path / "lab.toml", INFO))


def test_the_password_may_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    monkeypatch.setenv("VDDKC_LAB_TEST_GUEST", "g")
    path = write_target(
        tmp_path / "lab.toml", INFO, credentials='[credentials]\nuser = "u"\npassword_file = "secret"\n'
    )
    assert file_target(path, read_server=False).password == "from-file"


def test_run_with_a_bad_target_file_stops_in_one_line(tmp_path: Path, sim_server: SimServer) -> None:
    path = write_target(tmp_path / "lab.toml", sim_server.info)
    env = {k: v for k, v in sim_server.env.items() if k != PASSWORD_ENV}
    result = run_cli("run", "--target", str(path), "--reports", str(tmp_path / "r"), "-n", "0", "-k", "K5", env=env)
    assert result.returncode != 0
    assert f"environment variable {PASSWORD_ENV} is unset" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_a_run_whose_build_differs_from_the_target_file_stops_in_one_line(tmp_path: Path) -> None:
    path = write_target(tmp_path / "lab.toml", INFO)
    env = {**os.environ, PASSWORD_ENV: "pw", GUEST_ENV: "guest-pw"}
    result = run_cli(
        "run", "--target", str(path), "--vddk-build", "7.0.2", "--reports", str(tmp_path), "-n", "0", env=env
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--vddk-build 7.0.2 differs from vddk.build 7.0.3" in result.stderr


def test_preflight_reports_each_problem_of_the_target_on_one_line(tmp_path: Path, sim_server: SimServer) -> None:
    info = sim_server.info
    good = target_text(info)
    bad = (
        good.replace('"target-vmfs", "target-nfs"', '"target-vmfs", "no-such-vm", "target-nfs"')
        .replace('VMFS = ["vmfs-01"]', 'VMFS = ["vmfs-01", "nfs-01"]')
        .replace('vsphere = "7.0U3"', 'vsphere = "6.7U3"')
        .replace('proxy = "proxy-rhel83"', 'proxy = "proxy-gone"')
        .replace('backend = "simulated"', f'backend = "native"\nlibdir = "{tmp_path / "no-vddk"}"')
    )
    path = tmp_path / "lab.toml"
    path.write_text(bad)
    result = run_cli("preflight", str(path), env=sim_server.env, timeout=120)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    expected = [
        "vms.allow: no VM 'no-such-vm'",
        "datastores.VMFS: 'nfs-01' is of type NFS",
        "server.vsphere: the file says 6.7U3, the server is 7.0U3",
        "vms.proxy: no VM 'proxy-gone'",
        "vddk.libdir",
    ]
    for text in expected:
        assert sum(text in line for line in lines) == 1, (text, lines)
    # VMware's library (backend native) reaches each ESXi host's NFC port by its name, which the simulator's
    # hosts do not serve: one line per host
    hosts = [line for line in lines if "lab problem: data plane unreachable: cannot connect to ESXi host " in line]
    assert len(hosts) == 3 and all(":902" not in line and "TCP 902" in line for line in hosts), lines
    assert len(lines) == len(expected) + len(hosts), lines


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ("thumbprint", "presents a certificate with thumbprint"),
        ("password", "credentials: login to 127.0.0.1 as"),
        ("datacenter", "server.datacenter: no datacenter 'dc-x'"),
        ("port", "server: cannot reach 127.0.0.1:1"),
    ],
)
def test_preflight_refuses_a_wrong_certificate_login_datacenter_or_address(
    tmp_path: Path, sim_server: SimServer, change: str, text: str
) -> None:
    info = dict(sim_server.info)
    env = dict(sim_server.env)
    if change == "thumbprint":
        info["thumbprint"] = ":".join(["00"] * 20)
    elif change == "password":
        env[PASSWORD_ENV] = "wrong-password"
    elif change == "port":
        info["port"] = 1
    body = target_text(info)
    if change == "datacenter":
        body = body.replace('datacenter = "dc1"', 'datacenter = "dc-x"')
    path = tmp_path / "lab.toml"
    path.write_text(body)
    result = run_cli("preflight", str(path), env=env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert text in result.stdout and len(result.stdout.strip().splitlines()) == 1, result.stdout
    if change == "thumbprint":  # the line tells the real one, so the fix is a copy after checking it
        assert re.search(r"thumbprint ([0-9A-F]{2}:){19}[0-9A-F]{2}, not", result.stdout)
        assert sim_server.info["thumbprint"].upper() in result.stdout.upper()


#: one case per transport, two datastore types, restore to the original and to new thin and thick VMs
ROUNDTRIP = "roundtrip and (nbd-NFS-random or nbdssl-VMFS-random or hotadd-VMFS-random or san-VMFS-random)"


def test_round_trips_are_green_through_a_target_file(tmp_path: Path, sim_server: SimServer) -> None:
    """Done-when: target file -> preflight -> run; the Target comes from the file, the password from the env."""
    path = write_target(tmp_path / "lab.toml", sim_server.info)
    assert sim_server.password not in path.read_text()
    preflight = run_cli("preflight", str(path), env=sim_server.env, timeout=120)
    assert preflight.returncode == 0, preflight.stdout + preflight.stderr
    assert "no problem found" in preflight.stdout
    reports = tmp_path / "reports"
    result = run_cli(
        "run",
        "--target",
        str(path),
        "--reports",
        str(reports),
        "--run-id",
        "lab-rt",
        "-n",
        "0",
        "-k",
        ROUNDTRIP,
        env=sim_server.env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((reports / "lab-rt" / "summary.json").read_text())
    assert set(summary["totals"]) == {"passed"} and summary["totals"]["passed"] >= 20, summary["totals"]
    assert summary["target"]["name"] == "sim-serve" and summary["target"]["target_file"] == str(path)
    assert summary["target"]["thumbprint"] == sim_server.info["thumbprint"]
    # nothing left on the server afterwards
    swept = run_cli("sweep", str(path), "--dry-run", env=sim_server.env, timeout=120)
    left = [line for line in swept.stdout.splitlines() if "would remove" in line and "simulator state" not in line]
    assert swept.returncode == 0 and left == [], swept.stdout


def test_every_command_given_the_same_bad_target_file_exits_2_with_one_line(tmp_path: Path) -> None:
    """One convention (conformance/exit_codes.py): bad input is 2, whichever command reads the file."""
    bad = tmp_path / "lab.toml"
    bad.write_text('[server]\nhost = "vc.example"\n')
    for command in (["run", "--target", str(bad), f"--reports={tmp_path / 'r'}"], ["preflight", str(bad)],
                    ["sweep", str(bad)]):  # fmt: skip
        result = run_cli(*command, timeout=120)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == exit_codes.BAD_INPUT, (command, result.stdout, result.stderr)
        assert len(lines) == 1 and "credentials" in lines[0] and "Traceback" not in result.stderr, command
