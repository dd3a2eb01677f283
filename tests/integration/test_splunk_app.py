"""`hsmaudit splunk-app build` through the real console script, and Splunk AppInspect on its package.

splunk-appinspect (Splunk's own validator; proprietary licence, so a dev/CI tool only) pins old
versions of several libraries, so `scripts/setup` installs it into `.venv-appinspect`;
`HSMAUDIT_APPINSPECT` may point at another executable. It runs fully offline with
`--skip-trusted-libraries-update` (splunk-hec-and-app.md §3.1). `--ci` makes any failed check a
non-zero exit; the test also requires zero errors, warnings and skipped checks, and runs every
check (`--mode precert`, no tag filter).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hsmaudit import __version__
from hsmaudit.splunk.package import splunk_version

from ..conftest import REPO_ROOT

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))


def run_hsmaudit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
    return subprocess.run(
        [HSMAUDIT, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd, env=env
    )


def appinspect_executable() -> str:
    candidates = [
        os.environ.get("HSMAUDIT_APPINSPECT", ""),
        str(REPO_ROOT / ".venv-appinspect" / "bin" / "splunk-appinspect"),
        shutil.which("splunk-appinspect") or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("splunk-appinspect not found: run scripts/setup (it installs .venv-appinspect)")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = run_hsmaudit("splunk-app", "build", "--output", str(out), cwd=out)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["version"] == splunk_version(__version__)
    assert Path(record["path"]).name == f"hsmaudit-{record['version']}.tgz"
    return Path(record["path"])


def test_build_prints_one_json_line_describing_the_package(package: Path) -> None:
    import hashlib

    with tarfile.open(package, "r:gz") as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
    result = run_hsmaudit("splunk-app", "build", "-o", str(package.parent), cwd=package.parent)
    record = json.loads(result.stdout)
    assert record == {
        "path": str(package),
        "version": splunk_version(__version__),
        "files": len(files),
        "bytes": package.stat().st_size,
        "sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
    }
    assert result.stderr == ""


def test_build_defaults_to_dist_and_has_a_table_format(tmp_path: Path) -> None:
    result = run_hsmaudit("splunk-app", "build", "--format", "table", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    built = tmp_path / "dist" / f"hsmaudit-{splunk_version(__version__)}.tgz"
    assert built.is_file()
    assert "sha256" in result.stdout and "files" in result.stdout


def test_a_bad_source_fails_with_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = run_hsmaudit(
        "splunk-app", "build", "--source", str(tmp_path), "-o", str(tmp_path / "out"), cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("hsmaudit: ") and "not a Splunk app source tree" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains_the_command(tmp_path: Path) -> None:
    result = run_hsmaudit("splunk-app", "build", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "hsmaudit-<version>.tgz" in result.stdout and "--output" in result.stdout


def test_appinspect_precert_passes_every_check(package: Path, tmp_path: Path) -> None:
    report = tmp_path / "appinspect.json"
    result = subprocess.run(
        [
            appinspect_executable(), "inspect", str(package), "--mode", "precert",
            "--skip-trusted-libraries-update", "--data-format", "json", "--output-file", str(report),
            "--max-messages", "all", "--ci",
        ],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert report.is_file(), result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    summary = data["summary"]
    problems = [
        f"{check['name']} [{check['result']}]: "
        + "; ".join(
            f"{m.get('message_filename')}:{m.get('message_line')} {m.get('message')}"
            for m in check["messages"]
        )
        for app_report in data["reports"]
        for group in app_report["groups"]
        for check in group["checks"]
        if check["result"] not in ("success", "not_applicable")
    ]
    assert result.returncode == 0, "\n".join(problems) or result.stdout[-2000:]
    for outcome in ("error", "failure", "future_failure", "warning", "skipped"):
        assert summary[outcome] == 0, f"{outcome}: " + "\n".join(problems)
    assert summary["success"] >= 100
    app = data["reports"][0]
    assert (app["app_package_id"], app["app_version"]) == ("hsmaudit", splunk_version(__version__))


def test_appinspect_run_fails_a_package_it_should_reject(tmp_path: Path) -> None:
    # GIVEN the app with its dashboard's Simple XML version removed (jQuery 3.5 policy: a failure)
    from hsmaudit.splunk.package import app_source_dir, build_app

    source = tmp_path / "hsmaudit_app"
    shutil.copytree(app_source_dir(), source)
    view = source / "default" / "data" / "ui" / "views" / "hsmaudit_overview.xml"
    view.write_text(
        view.read_text(encoding="utf-8").replace('<form version="1.1"', "<form"), encoding="utf-8"
    )
    built = build_app(tmp_path / "dist", source=source)
    # WHEN AppInspect runs the way the passing test runs it
    report = tmp_path / "appinspect.json"
    result = subprocess.run(
        [
            appinspect_executable(), "inspect", str(built.path), "--mode", "precert",
            "--skip-trusted-libraries-update", "--data-format", "json", "--output-file", str(report), "--ci",
        ],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    # THEN the run fails, naming the check
    assert result.returncode != 0
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["summary"]["failure"] >= 1
    failed = {
        check["name"]
        for group in data["reports"][0]["groups"]
        for check in group["checks"]
        if check["result"] == "failure"
    }
    assert "check_simplexml_standards_version" in failed
