"""The Lambda zip's compiled parser core: built for arm64 and x86_64, it runs there and changes nothing.

`hsmaudit package --compiled yes` cross-compiles records/_scan.c for the target. Here each zip is
unzipped and run by a CPython of that architecture with only the zip and the standard library on
its path: x86_64 by this machine's python3.11, arm64 by Debian's arm64 python3.11 under qemu-user
(tests/support/arm64_python.py). Each runs the Firehose transformation (both event formats) and
parse_message over the published samples, generated records in every separator style and records
the C declines (non-ASCII, CRLF, odd blanks, not records), and must print byte for byte what the
same zip prints with the .so taken out (the pure-Python path), with the C core loaded
(`FAST_SCAN_COMPILED`). The .so must need nothing past glibc 2.17 (manylinux2014; Lambda has 2.34)
and be the same bytes on every build.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.ops.crossbuild import MAX_GLIBC, ToolchainMissing, find_toolchain
from hsmaudit.ops.package import Arch, Compiled, build_lambda_zip
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.render import SEPARATORS, render_text_record

from ..conftest import REPO_ROOT, SAMPLES_DIR
from ..support import arm64_python

REQUIREMENTS = REPO_ROOT / "deploy" / "requirements-lambda.txt"
SO_NAME = "hsmaudit/records/_scan.abi3.so"
LOG_GROUP = "/aws/cloudhsm/cluster-compiled01"

# Run by the target's interpreter (-I -S: no site, no environment): the unzipped zip first on the
# path, then the standard library and nothing else.
RUNNER = r"""
import json, platform, sys
task = sys.argv[1]
sys.path.insert(0, task)
import hsmaudit
assert hsmaudit.__file__.startswith(task), hsmaudit.__file__
from hsmaudit.aws.firehose import transform_records
from hsmaudit.records import parse
from hsmaudit.records.event import event_to_json
from hsmaudit.sinks.hec.envelope import EventEncoder
inputs = json.load(open(sys.argv[2]))
out = {"compiled": parse.FAST_SCAN_COMPILED, "machine": platform.machine()}
for event_format in ("lean", "json"):
    out[event_format] = transform_records(inputs["firehose"], encoder=EventEncoder(event_format=event_format), spool=None)
out["parsed"] = [
    event_to_json(parse.parse_message(m, log_group=inputs["log_group"], log_stream=s)).decode()
    for s, m in inputs["messages"]
]
print(json.dumps(out, sort_keys=True))
"""


def _generated(count: int) -> list[str]:
    """Valid records of every log type and separator style, then variants the C must decline or reject."""
    records = []
    for number in range(count):
        log_code = number % 4
        records.append(
            render_text_record(
                HsmEvent(
                    usecs=1_700_000_000_000_000 + number * 1_234_567,
                    sequence_no=number,
                    reboot_counter=0x107,
                    command_type="CN_MGMT_CMD",
                    command_type_code=0,
                    opcode=("CN_LOGIN", "CN_GENERATE_KEY", "CN_APP_FINALIZE", "CN_SHARE_OBJECT")[log_code],
                    opcode_code=(0xD, 0x20, 0x7, 0x12)[log_code],
                    session_handle=f"0x{0x1000000 + number * 7919:x}",
                    success=number % 11 != 0,
                    response_code=0 if number % 11 else 163,
                    response="SUCCESS" if number % 11 else "RET_USER_LOGIN_FAILURE",
                    log_type=(
                        "MGMT_USER_DETAILS_LOG",
                        "MGMT_KEY_DETAILS_LOG",
                        "MINIMAL_LOG_ENTRY",
                        "UNKNOWN",
                    )[log_code],
                    log_type_code=(2, 1, 0, 5)[log_code],
                    user_name=("admin", "app_user", "bob")[number % 3] if log_code == 0 else None,
                    user_type="CN_CRYPTO_USER" if log_code == 0 else None,
                    user_type_code=1 if log_code == 0 else None,
                    key_handle=number * 131 + 1 if log_code == 1 else None,
                ),
                SEPARATORS[number % len(SEPARATORS)],
            )
        )
    base = records[0]
    declined = [
        base.replace("admin", "admin\u00e9"),  # non-ASCII: the C declines, Python parses
        base.replace("\n", "\r\n"),
        base + "\n",
        base.replace("Opcode : ", "Opcode :\t "),
        base.replace("0x107", "0X107"),
        base.replace("usecs:", "usecs: "),
        "\n".join(base.splitlines()[:5]),
        "hello, not a record",
        "",
    ]
    return records + declined


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The samples and ~250 generated records: one Firehose invocation and the same messages one by one."""
    samples = [path.read_text() for path in sorted(SAMPLES_DIR.glob("aws-*.txt"))]
    messages = [(f"hsm-{i % 3}", m) for i, m in enumerate(samples + _generated(240))]
    records = []
    for start in range(0, len(messages), 50):
        document = {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": LOG_GROUP,
            "logStream": messages[start][0],
            "subscriptionFilters": ["hsmaudit"],
            "logEvents": [
                {"id": f"{start + n:056d}", "timestamp": 1_700_000_000_000 + start + n, "message": m}
                for n, (_, m) in enumerate(messages[start : start + 50])
            ],
        }
        data = base64.b64encode(gzip.compress(json.dumps(document).encode(), mtime=0)).decode()
        records.append(
            {"recordId": f"r{start}", "approximateArrivalTimestamp": 1_700_000_000_000, "data": data}
        )
    path = tmp_path_factory.mktemp("compiled-inputs") / "inputs.json"
    path.write_text(
        json.dumps({"firehose": {"records": records}, "messages": messages, "log_group": LOG_GROUP})
    )
    return path


def _require_toolchain(arch: Arch) -> None:
    """scripts/setup installs both toolchains: CI must have them (fail), a bare machine skips."""
    try:
        find_toolchain(arch)
    except ToolchainMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/setup should have installed it: {missing}")
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[Arch, tuple[Path, Path]]:
    """Per architecture: the zip built with the C core for CPython 3.11, and a second build elsewhere."""
    root = tmp_path_factory.mktemp("compiled-zips")
    pip = (sys.executable, "-m", "pip", f"--cache-dir={root / 'pip-cache'}")
    built: dict[Arch, tuple[Path, Path]] = {}
    for arch in Arch:
        try:
            find_toolchain(arch)
        except ToolchainMissing:
            continue
        paths = []
        for copy in ("one", "two"):
            result = build_lambda_zip(
                root / copy / f"{arch.value}.zip",
                requirements=REQUIREMENTS,
                arch=arch,
                python_version="3.11",
                pip=pip,
                compiled=Compiled.yes,
            )
            assert result.compiled and result.compiled_note == ""
            paths.append(Path(result.path))
        built[arch] = (paths[0], paths[1])
    return built


def _unzipped(zip_path: Path, where: Path, *, with_so: bool) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(where)
    if not with_so:
        (where / SO_NAME).unlink()
    return where


def _run(command: list[str], task: Path, inputs: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [*command, "-I", "-S", "-c", RUNNER, str(task), str(inputs)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _host_python311() -> str:
    """A CPython 3.11 of this machine, the version the zips' msgspec wheel is for."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        pytest.skip("no python3.11 on this machine to run a 3.11 zip")
    return found


@pytest.fixture(scope="module")
def pure_python(
    zips: dict[Arch, tuple[Path, Path]], inputs: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """What the x86_64 zip prints with its .so taken out: the pure-Python path, the reference."""
    _require_toolchain(Arch.x86_64)
    task = _unzipped(zips[Arch.x86_64][0], tmp_path_factory.mktemp("pure"), with_so=False)
    out = _run([_host_python311()], task, inputs)
    assert out["compiled"] is False
    return json.dumps({k: v for k, v in out.items() if k not in {"compiled", "machine"}}, sort_keys=True)


@pytest.mark.parametrize("arch", list(Arch))
def test_the_compiled_core_is_for_its_target_reproducible_and_needs_nothing_past_glibc_2_17(
    arch: Arch, zips: dict[Arch, tuple[Path, Path]], tmp_path: Path
) -> None:
    _require_toolchain(arch)
    first, second = zips[arch]
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        library = tmp_path / "_scan.abi3.so"
        library.write_bytes(archive.read(SO_NAME))
    assert [n for n in names if n.startswith("hsmaudit/") and n.endswith((".so", ".c", ".pyi"))] == [SO_NAME]
    # objdump (not the builder's readelf) as a second reading of what the dynamic linker must find.
    triplet = "aarch64-linux-gnu" if arch is Arch.arm64 else "x86_64-linux-gnu"
    objdump = shutil.which(f"{triplet}-objdump") or pytest.fail(f"{triplet}-objdump missing")
    header = subprocess.run([objdump, "-f", str(library)], capture_output=True, text=True, check=True).stdout
    assert ("aarch64" if arch is Arch.arm64 else "x86-64") in header
    symbols = subprocess.run([objdump, "-T", str(library)], capture_output=True, text=True, check=True).stdout
    versions = {
        tuple(int(part) for part in word.removeprefix("(").removesuffix(")").split("_", 1)[1].split(".")[:2])
        for line in symbols.splitlines()
        for word in line.split()
        if word.startswith(("GLIBC_", "(GLIBC_"))
    }
    assert versions, symbols  # it does call libc (memcmp, memchr...): an empty list is a misreading
    assert max(versions) <= MAX_GLIBC, symbols
    assert "PyInit__scan" in symbols
    dynamic = subprocess.run([objdump, "-p", str(library)], capture_output=True, text=True, check=True).stdout
    needed = sorted(line.split()[1] for line in dynamic.splitlines() if line.strip().startswith("NEEDED"))
    assert needed == ["libc.so.6"], needed  # abi3: no libpython, nothing Lambda lacks


def test_the_x86_64_zip_runs_the_c_core_and_prints_what_pure_python_prints(
    zips: dict[Arch, tuple[Path, Path]], inputs: Path, pure_python: str, tmp_path: Path
) -> None:
    task = _unzipped(zips[Arch.x86_64][0], tmp_path / "task", with_so=True)
    out = _run([_host_python311()], task, inputs)
    assert out.pop("compiled") is True
    assert out.pop("machine") == "x86_64"
    assert json.dumps(out, sort_keys=True) == pure_python
    assert len(out["parsed"]) > 250 and len(out["lean"]["records"]) == 6


def test_the_arm64_zip_runs_the_c_core_under_qemu_and_prints_what_pure_python_prints(
    zips: dict[Arch, tuple[Path, Path]], inputs: Path, pure_python: str, tmp_path: Path
) -> None:
    _require_toolchain(Arch.arm64)
    reason = arm64_python.why_not()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/setup should have provided it: {reason}")
        pytest.skip(reason)
    root = arm64_python.ensure_sysroot()
    task = _unzipped(zips[Arch.arm64][0], tmp_path / "task", with_so=True)
    out = _run(arm64_python.interpreter(root), task, inputs)
    assert out.pop("machine") == "aarch64"
    assert out.pop("compiled") is True
    assert json.dumps(out, sort_keys=True) == pure_python


def test_the_command_says_when_the_c_core_is_left_out_and_fails_with_compiled_yes(tmp_path: Path) -> None:
    """On a machine without the cross compiler (PATH without it): auto builds and says why on
    stderr with `compiled: false`; yes fails in one line naming the Debian package."""
    hsmaudit = str(Path(sys.executable).parent / "hsmaudit")
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    environment = {**os.environ, "PATH": str(no_tools), "PIP_CACHE_DIR": str(tmp_path / "pip-cache")}
    base = [hsmaudit, "package", "--arch", "arm64", "--python-version", "3.11"]
    auto = subprocess.run(
        [*base, "-o", str(tmp_path / "auto.zip")],
        capture_output=True, text=True, timeout=300, check=False, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert auto.returncode == 0, auto.stderr
    summary = json.loads(auto.stdout)
    assert summary["compiled"] is False and "aarch64-linux-gnu-gcc" in summary["compiled_note"]
    assert "the parser's C match is not in the zip" in auto.stderr
    with zipfile.ZipFile(tmp_path / "auto.zip") as archive:
        assert SO_NAME not in archive.namelist()
    yes = subprocess.run(
        [*base, "--compiled", "yes", "-o", str(tmp_path / "yes.zip")],
        capture_output=True, text=True, timeout=300, check=False, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert yes.returncode == 1
    (line,) = yes.stderr.strip().splitlines()
    assert (
        line.startswith("hsmaudit: --compiled yes: no C compiler for arm64")
        and "gcc-aarch64-linux-gnu" in line
    )
    assert not (tmp_path / "yes.zip").exists()
