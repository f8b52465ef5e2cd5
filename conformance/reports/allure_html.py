"""The Allure HTML report, built offline with Allure 3 (the npm ``allure`` package) from the runs' allure-results.

Why staging copies: the run directories are evidence and stay untouched; the copies get (a) the release-note links
rewritten from the catalog anchor to the matrix page's row (``../matrix.html#K4``), which is where the item is
explained, (b) the run-level parameters (VDDK build, vSphere) on results written before the plugin added them, so
the same test on two builds is two tests rather than one test retried, and (c) ``categories.json``.
The generated pages include a Google Tag Manager script unconditionally (Allure 3.18); it is removed, so opening the
report sends nothing anywhere. The report is one ``index.html`` with its data inside (``singleFile``): browsers will
not fetch data files from a page opened as file://. History: Allure 3 keeps it in one JSON-lines file
(``historyPath``) in ``OUT/history/``, so every report written to the same OUT adds a point to the trend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from conformance.knowledge.catalog import load_catalog
from conformance.reports import labels
from conformance.reports.categories import CATEGORIES, write_categories
from conformance.reports.runs import Run

PACKAGE = "allure@3"
CACHE_ENV = "VDDK_CONFORMANCE_ALLURE_CACHE"
ENV_LABEL = "vddk_run"  # staged results carry their run's environment id under this label
INSTALL_TIMEOUT = 600
GENERATE_TIMEOUT = 900


_ANALYTICS = re.compile(
    r'\s*<script async src="https://www\.googletagmanager\.com/[^"]*"></script>\s*<script>[^<]*?gtag\([^<]*?</script>'
)


class AllureError(RuntimeError):
    """Node, npm or the allure package is missing or failed; one line the report command prints as is."""


def default_cache() -> Path:
    """Where ``npm install allure@3`` goes: $VDDK_CONFORMANCE_ALLURE_CACHE or ~/.cache/vddk-conformance/allure."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "vddk-conformance" / "allure"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def allure_command(cache: Path, *, install: bool = True) -> list[str]:
    """``[node, cli.js]`` of Allure 3 in ``cache``, installing it from npm on first use."""
    node = shutil.which("node")
    if node is None:
        raise AllureError("Node.js is not installed (apt-get install nodejs npm): Allure HTML not built")
    cli = cache / "node_modules" / "allure" / "cli.js"
    if cli.is_file():
        return [node, str(cli)]
    npm = shutil.which("npm")
    if not install or npm is None:
        raise AllureError(f"Allure 3 is not in {cache} and npm is not available to install it: Allure HTML not built")
    # install beside the cache and move it into place: parallel first uses (xdist workers) cannot mix their files
    staging = cache.with_name(f"{cache.name}.install-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AllureError(
                f"npm install {PACKAGE} failed ({_last_line(done.stderr or done.stdout)}): Allure HTML not built"
            )
        if not cli.is_file():
            with contextlib.suppress(OSError):  # another process got there first: its copy is as good
                staging.rename(cache)  # also replaces an empty cache folder
    except subprocess.TimeoutExpired:
        raise AllureError(f"npm install {PACKAGE} timed out after {INSTALL_TIMEOUT}s: Allure HTML not built") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not cli.is_file():
        raise AllureError(f"{cache} holds no usable Allure 3 (remove the folder and retry): Allure HTML not built")
    return [node, str(cli)]


#: summary.json keys besides build and server that decide a run's outcomes: runs that differ in any of them are
#: separate Allure environments, so one's passes never read as another's retries in the history
_ENVIRONMENT_KEYS = ("backup_app", "matrix", "sim_behaviour", "sim_vsphere", "sim_fixed", "sim_faults", "assumed_fixed")
_DEFAULTS: dict[str, Any] = {"backup_app": "reference", "matrix": "default", "target": "sim"}


def _distinguishing(run: Run) -> dict[str, Any]:
    """What, besides build and server, decides the run's outcomes (target name included)."""
    values = {key: run.summary.get(key) for key in _ENVIRONMENT_KEYS}
    values["sim_behaviour"] = None if values["sim_behaviour"] == run.build else values["sim_behaviour"]
    values["sim_vsphere"] = None if values["sim_vsphere"] == run.vsphere else values["sim_vsphere"]
    target = run.summary.get("target")
    values["target"] = target.get("name") if isinstance(target, dict) else None
    return {k: v for k, v in values.items() if v not in (None, [], "") and _DEFAULTS.get(k) != v}


def environment_id(run: Run) -> str:
    """Allure 3 environment of a run (ids allow letters, digits, ``_`` and ``-``): one per build and server and
    whatever else decides the outcomes (backup application, matrix, simulated behaviour, faults, target)."""
    base = re.sub(r"[^A-Za-z0-9_-]", "-", f"vddk-{run.build}-vsphere-{run.vsphere}")
    extra = _distinguishing(run)
    if not extra:
        return base
    return f"{base}-{hashlib.sha256(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:10]}"


def environment_label(run: Run) -> str:
    """The environment's name in Allure: the two versions, then what else sets it apart."""
    extra = _distinguishing(run)
    parts = [f"{k.replace('_', ' ')} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in extra.items()]
    return " · ".join([run.label, *parts])


def _fix_result(data: dict[str, Any], run: Run, matrix_href: str, anchors: dict[str, str]) -> dict[str, Any]:
    """Rewrite release-note links to the matrix page and add the run-level parameters if the run lacks them."""
    for link in data.get("links") or []:
        item_id = anchors.get(str(link.get("url", "")))
        if item_id:
            link["url"] = f"{matrix_href}#{item_id}"
    data.setdefault("labels", []).append({"name": ENV_LABEL, "value": environment_id(run)})
    parameters = data.setdefault("parameters", [])
    names = {p.get("name") for p in parameters}
    added = False
    for name, value in labels.run_parameters(run.build, run.vsphere):
        if name not in names:
            parameters.append({"name": name, "value": value})
            added = True
    if added and data.get("historyId"):
        identity = f"{data['historyId']}|{run.build}|{run.vsphere}"
        data["historyId"] = hashlib.md5(identity.encode(), usedforsecurity=False).hexdigest()
    return data


def stage_results(runs: list[Run], staging: Path, matrix_href: str) -> list[Path]:
    """Copy each run's allure-results into ``staging/<n>-<run-id>`` with the fixes of ``_fix_result``."""
    anchors = {item.anchor: item.id for item in load_catalog().items()}
    if staging.exists():
        shutil.rmtree(staging)
    staged: list[Path] = []
    for index, run in enumerate(runs):
        source = run.allure_results
        if source is None:
            continue
        target = staging / f"run-{index}"  # never a name from the input: a folder name cannot climb out
        target.mkdir(parents=True)
        for path in source.iterdir():
            if not path.is_file():
                continue
            if path.name.endswith("-result.json"):
                data = json.loads(path.read_text(encoding="utf-8"))
                fixed = _fix_result(data, run, matrix_href, anchors)
                (target / path.name).write_text(json.dumps(fixed), encoding="utf-8")
            elif path.name != "environment.properties":
                shutil.copy2(path, target / path.name)
        write_categories(target)
        staged.append(target)
    if staged:
        (staged[0] / "environment.properties").write_text(merged_environment(runs), encoding="utf-8")
    return staged


def merged_environment(runs: list[Run]) -> str:
    """One environment.properties for the whole report: each key with its distinct values in run order.

    Allure keeps only the last file it reads, which would show one run's build as if it were every run's."""
    values: dict[str, list[str]] = {}
    for run in runs:
        source = run.allure_results
        path = source / "environment.properties" if source else None
        for line in path.read_text(encoding="utf-8").splitlines() if path and path.is_file() else ():
            key, sep, value = line.partition("=")
            if sep and key.strip() and value.strip() not in values.setdefault(key.strip(), []):
                values[key.strip()].append(value.strip())
    return "".join(f"{key}={' | '.join(found)}\n" for key, found in values.items())


def strip_analytics(report: Path) -> int:
    """Remove the analytics scripts from every HTML page of a generated report; returns how many were removed."""
    removed = 0
    for page in report.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        cleaned, count = _ANALYTICS.subn("", text)
        if count:
            page.write_text(cleaned, encoding="utf-8")
            removed += count
    return removed


def write_config(path: Path, output: Path, history: Path, name: str, runs: list[Run]) -> Path:
    """allurerc.mjs: name, output, history file, categories, single-file output, and one environment per build and
    server (a JavaScript config, because an environment is chosen by a matcher function over the labels)."""
    config = {
        "name": name,
        "output": str(output),
        "historyPath": str(history),
        "categories": [c.as_json() for c in CATEGORIES],
        # one index.html with the data inside: browsers refuse to fetch data files from a file:// page
        "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name}}},
    }
    environments = {environment_id(run): environment_label(run) for run in runs}
    lines = [
        f"const label = {json.dumps(ENV_LABEL)};",
        "const run = (id) => ({ labels }) => labels.some((l) => l.name === label && l.value === id);",
        f"const config = {json.dumps(config, indent=2)};",
        "config.environments = {",
        *(
            f"  {json.dumps(i)}: {{ name: {json.dumps(label)}, matcher: run({json.dumps(i)}) }},"
            for i, label in environments.items()
        ),
        "};",
        "export default config;",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_allure_html(runs: list[Run], out: Path, *, cache: Path | None = None, matrix_name: str = "matrix.html",
                      name: str = "VDDK conformance") -> Path:  # fmt: skip
    """Generate ``out/allure/index.html``; raises AllureError with one line when it cannot."""
    command = allure_command(cache or default_cache())
    output, history, staging = out / "allure", out / "history" / "history.jsonl", out / ".allure-staging"
    staged = stage_results(runs, staging, f"../{matrix_name}")
    if not staged:
        raise AllureError("no run has an allure-results folder: Allure HTML not built")
    history.parent.mkdir(parents=True, exist_ok=True)
    config = write_config(staging / "allurerc.mjs", output, history, name, runs)
    try:
        done = subprocess.run(
            [*command, "generate", "--config", str(config), *map(str, staged)],
            cwd=out, capture_output=True, text=True, timeout=GENERATE_TIMEOUT, check=False,
            env={**os.environ, "NO_COLOR": "1", "CI": os.environ.get("CI", "1")},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AllureError(f"allure generate timed out after {GENERATE_TIMEOUT}s") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    index = output / "index.html"
    if done.returncode != 0 or not index.is_file():
        raise AllureError(f"allure generate failed (exit {done.returncode}): {_last_line(done.stderr or done.stdout)}")
    strip_analytics(output)
    return index


def main() -> int:
    """``python -m conformance.reports.allure_html``: install Allure 3 into the cache now (CI does it up front)."""
    try:
        command = allure_command(default_cache())
    except AllureError as exc:
        print(f"allure: {exc}", file=sys.stderr)
        return 1
    print(f"allure: {command[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
