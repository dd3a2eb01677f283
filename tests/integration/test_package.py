"""`hsmaudit package`: the zip is reproducible, lean, and its handlers run with nothing else.

The zip is built for this machine's platform and Python (x86_64 / 3.11 here) through the same code
path as the arm64 / 3.14 build the template deploys (only `--arch` and `--python-version` differ),
so it can be run here: unzipped into an empty directory, imported from a virtual environment made
`--without-pip` (standard library only, like the Lambda runtime minus its boto3), with PYTHONPATH
pointing at the unzipped code, as Lambda's /var/task. The handler then forwards real CloudHSM
records to our HEC on 127.0.0.1, and the events are counted where they arrive.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.ops.crossbuild import ToolchainMissing, find_toolchain
from hsmaudit.ops.package import Arch, PackageError, build_lambda_zip, contents_digest, reachable_modules

from ..conftest import REPO_ROOT, SAMPLES_DIR
from .aws_env import moto_environment
from .fault_hec import FaultHec
from .payloads import received_event

REQUIREMENTS = REPO_ROOT / "deploy" / "requirements-lambda.txt"
LOG_GROUP = "/aws/cloudhsm/cluster-pkgtest01"
LOG_STREAM = "hsm-pkgtest01"
TOKEN = "package-test-token"  # the loopback HEC's token, not a secret
NEVER_IN_THE_ZIP = ("typer", "rich", "click", "starlette", "uvicorn", "sigma", "yaml", "boto3", "botocore",
                    "aws_lambda_powertools", "hsmaudit/cli", "hsmaudit/server", "hsmaudit/splunk")  # fmt: skip

# The script the clean interpreter runs: it proves where the code comes from and that nothing
# else is importable, then invokes both handlers as Lambda would.
RUNNER = r"""
import json, sys
import hsmaudit
assert hsmaudit.__file__.startswith(sys.argv[1]), hsmaudit.__file__
for absent in ("typer", "boto3", "yaml"):
    try:
        __import__(absent)
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(f"{absent} is importable: not a clean environment")
from hsmaudit.aws import firehose, subscription

class Context:
    function_name = "hsmaudit-forwarder"
    aws_request_id = "11111111-2222-3333-4444-555555555555"
    memory_limit_in_mb = 512
    def get_remaining_time_in_millis(self):
        return 60_000

payloads = json.load(open(sys.argv[2]))
results = [subscription.handler(event, Context()) for event in payloads["subscription"]]
transformed = firehose.handler(payloads["firehose"], Context())
assert "boto3" not in sys.modules, "boto3 was imported without S3 or Secrets Manager configured"
print(json.dumps({"subscription": results, "firehose": transformed}))
"""


def _has_toolchain(arch: Arch) -> bool:
    try:
        find_toolchain(arch)
    except ToolchainMissing:
        return False
    return True


def local_arch() -> Arch:
    machine = platform.machine().lower()
    return Arch.arm64 if machine in {"aarch64", "arm64"} else Arch.x86_64


LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def build(output: Path, pip_cache: Path) -> Any:
    # pip's cache lives in the test's tmp directory: nothing is cached outside it.
    pip = (sys.executable, "-m", "pip", f"--cache-dir={pip_cache}")
    return build_lambda_zip(
        output, requirements=REQUIREMENTS, arch=local_arch(), python_version=LOCAL_PYTHON, pip=pip
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """Two builds of this checkout into different places, sharing one pip cache."""
    root = tmp_path_factory.mktemp("package")
    cache = root / "pip-cache"
    first = build(root / "one" / "lambda.zip", cache)
    second = build(root / "two" / "lambda.zip", cache)
    return Path(first.path), Path(second.path), first


def test_two_builds_give_the_same_bytes(built: tuple[Path, Path, Any], tmp_path: Path) -> None:
    first, second, result = built
    assert first.read_bytes() == second.read_bytes()
    assert result.sha256 == hashlib.sha256(second.read_bytes()).hexdigest()
    # The compressor-independent digest is the one of the unzipped files.
    with zipfile.ZipFile(first) as archive:
        files = [name for name in archive.namelist() if not name.endswith("/")]
        archive.extractall(tmp_path)
    assert result.contents_sha256 == contents_digest({name: tmp_path / name for name in files})


def test_the_zip_holds_the_handlers_and_pinned_wheels_and_nothing_the_runtime_does_not_need(
    built: tuple[Path, Path, Any],
) -> None:
    first, _, result = built
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {"hsmaudit/aws/subscription.py", "hsmaudit/aws/firehose.py", "hsmaudit/config.py"} <= set(names)
    assert any(name.startswith("msgspec/_core.") and name.endswith(".so") for name in names)
    assert "urllib3/__init__.py" in names
    for name in names:
        assert not name.startswith(NEVER_IN_THE_ZIP), name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        mode = info.external_attr >> 16
        assert mode in {0o100644, 0o40755}, (info.filename, oct(mode))
    assert result.files == len([n for n in names if not n.endswith("/")])
    assert result.runtime == f"python{LOCAL_PYTHON}"


def _payloads() -> dict[str, Any]:
    """A subscription delivery of every published sample record, AWS's own sample envelope, a
    CONTROL_MESSAGE, and the same CloudHSM document as one Firehose record."""
    records = sorted(SAMPLES_DIR.glob("aws-*.txt"))
    document = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": LOG_GROUP,
        "logStream": LOG_STREAM,
        "subscriptionFilters": ["hsmaudit-test"],
        "logEvents": [
            {
                "id": str(36_000_000_000_000_000 + i),
                "timestamp": 1_700_000_000_000 + i,
                "message": path.read_text(),
            }
            for i, path in enumerate(records)
        ],
    }
    control = json.loads((SAMPLES_DIR / "cwl-control-message-decoded.json").read_text())

    def envelope(doc: dict[str, Any]) -> dict[str, Any]:
        return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()}}

    aws_sample = json.loads((SAMPLES_DIR / "cwl-aws-sample-envelope.json").read_text())
    firehose = {
        "invocationId": "inv-1",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/hsmaudit",
        "region": "us-east-1",
        "records": [
            {
                "recordId": "r1",
                "approximateArrivalTimestamp": 1_700_000_000_000,
                "data": base64.b64encode(gzip.compress(json.dumps(document).encode())).decode(),
            }
        ],
    }
    return {
        "subscription": [envelope(document), aws_sample, envelope(control)],
        "firehose": firehose,
        "expected_records": len(records),
    }


@pytest.fixture
def loopback_hec() -> Iterator[FaultHec]:
    """Our HEC on 127.0.0.1:0 with this module's token."""
    server = FaultHec(token=TOKEN)
    yield server
    server.stop()


def test_the_packaged_handlers_run_in_a_clean_environment_and_deliver_to_hec(
    built: tuple[Path, Path, Any], loopback_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN the zip unzipped as Lambda's /var/task and a venv with nothing but the stdlib
    first, _, _ = built
    task = tmp_path / "task"
    with zipfile.ZipFile(first) as archive:
        archive.extractall(task)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    payloads = _payloads()
    payload_file = tmp_path / "payloads.json"
    payload_file.write_text(json.dumps(payloads))
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(task),
        "PYTHONNOUSERSITE": "1",
        "HSMAUDIT_HEC_URL": loopback_hec.url,
        "HSMAUDIT_HEC_TOKEN": TOKEN,
        "HSMAUDIT_SPOOL_DIR": str(tmp_path / "spool"),
    }
    # WHEN both handlers run there on the payloads
    completed = subprocess.run(
        [str(python), "-c", RUNNER, str(task), str(payload_file)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert TOKEN not in completed.stdout + completed.stderr
    output = json.loads(completed.stdout.strip().splitlines()[-1])

    # THEN every record arrived at HEC as one event, with the HSM as host and the group as source
    kept = loopback_hec.events()
    from_cloudhsm = [e for e in kept if e["source"] == LOG_GROUP]
    assert len(from_cloudhsm) == payloads["expected_records"]
    assert {e["host"] for e in from_cloudhsm} == {LOG_STREAM}
    assert {e["sourcetype"] for e in kept} == {"aws:cloudhsm:audit:text"}
    assert all(e["fields"]["cluster_id"] == "cluster-pkgtest01" for e in from_cloudhsm)
    assert sum(1 for e in from_cloudhsm if received_event(e).opcode == "CN_LOGIN") >= 2
    # AWS's sample envelope: two non-CloudHSM messages still arrive (with parse_error), the
    # CONTROL_MESSAGE never does.
    assert len(kept) == payloads["expected_records"] + 2
    assert not any("CONTROL MESSAGE" in json.dumps(e) for e in kept)
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").rglob("*.gz"))
    # AND the Firehose transformation turned the same document into the same number of HEC events
    (record,) = output["firehose"]["records"]
    assert (record["recordId"], record["result"]) == ("r1", "Ok")
    lines = [line for line in base64.b64decode(record["data"]).decode().splitlines() if line.strip()]
    assert len(lines) == payloads["expected_records"]
    assert {json.loads(line)["host"] for line in lines} == {LOG_STREAM}


# ---------------------------------------------------------------------------- what goes in


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_import_walk_follows_function_level_and_relative_imports_but_not_type_checking(
    tmp_path: Path,
) -> None:
    root = _tree(
        tmp_path,
        {
            "hsmaudit/__init__.py": "",
            "hsmaudit/aws/__init__.py": "",
            "hsmaudit/aws/subscription.py": (
                "from typing import TYPE_CHECKING\n"
                "from ..sinks import hec\n"
                "if TYPE_CHECKING:\n    from hsmaudit.store import db\n"
                "def handler(e, c):\n    from hsmaudit.aws.spool import S3Spool\n"
            ),
            "hsmaudit/aws/firehose.py": "import hsmaudit.records.parse\n",
            "hsmaudit/aws/autosubscribe.py": "",
            "hsmaudit/aws/spool.py": "",
            "hsmaudit/sinks/__init__.py": "",
            "hsmaudit/sinks/hec.py": "from hsmaudit.records.event import HsmEvent\n",
            "hsmaudit/records/__init__.py": "",
            "hsmaudit/records/event.py": "",
            "hsmaudit/records/parse.py": "",
            "hsmaudit/store/__init__.py": "",
            "hsmaudit/store/db.py": "",
        },
    )
    assert reachable_modules(root) == [
        "hsmaudit",
        "hsmaudit.aws",
        "hsmaudit.aws.autosubscribe",
        "hsmaudit.aws.firehose",
        "hsmaudit.aws.spool",
        "hsmaudit.aws.subscription",
        "hsmaudit.records",
        "hsmaudit.records.event",
        "hsmaudit.records.parse",
        "hsmaudit.sinks",
        "hsmaudit.sinks.hec",
    ]


def test_a_missing_handler_module_fails_with_a_clear_reason(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"hsmaudit/__init__.py": "", "hsmaudit/aws/__init__.py": ""})
    with pytest.raises(PackageError, match=r"handler module hsmaudit\.aws\.subscription not found"):
        reachable_modules(root)


def test_a_handler_that_imports_the_cli_is_refused(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "hsmaudit/__init__.py": "",
            "hsmaudit/aws/__init__.py": "",
            "hsmaudit/aws/subscription.py": "from hsmaudit.cli.output import fail\n",
            "hsmaudit/aws/firehose.py": "",
            "hsmaudit/aws/autosubscribe.py": "",
            "hsmaudit/cli/__init__.py": "",
            "hsmaudit/cli/output.py": "import typer\n",
        },
    )
    with pytest.raises(PackageError, match=r"handlers import hsmaudit\.cli"):
        build_lambda_zip(tmp_path / "out.zip", requirements=REQUIREMENTS, source_root=root)
    assert not (tmp_path / "out.zip").exists()


def test_an_unpinned_requirement_is_refused_and_leaves_no_zip(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("msgspec\n")
    with pytest.raises(PackageError, match="pip could not install"):
        build_lambda_zip(
            tmp_path / "out.zip",
            requirements=requirements,
            arch=local_arch(),
            python_version=LOCAL_PYTHON,
            pip=(sys.executable, "-m", "pip", f"--cache-dir={tmp_path / 'cache'}"),
        )
    assert not (tmp_path / "out.zip").exists()


def test_the_command_prints_one_json_line_and_fails_in_one_line(tmp_path: Path) -> None:
    hsmaudit = str(Path(sys.executable).parent / "hsmaudit")
    environment = {**os.environ, "PIP_CACHE_DIR": str(tmp_path / "pip-cache")}
    output = tmp_path / "lambda.zip"
    good = subprocess.run(
        [
            hsmaudit,
            "package",
            "--arch",
            local_arch().value,
            "--python-version",
            LOCAL_PYTHON,
            "-o",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # the checkout is found through the installed sources
        env=environment,
    )
    assert good.returncode == 0, good.stderr
    (line,) = good.stdout.splitlines()
    summary = json.loads(line)
    assert summary["path"] == str(output) and summary["bytes"] == output.stat().st_size
    assert summary["runtime"] == f"python{LOCAL_PYTHON}"
    assert summary["compiled"] is _has_toolchain(local_arch())

    bad = subprocess.run(
        [hsmaudit, "package", "--python-version", "three", "-o", str(tmp_path / "x.zip")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=environment,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == ["hsmaudit: --python-version must look like 3.14, not 'three'"]


def test_a_ca_bundle_is_added_at_the_zip_root_and_a_non_pem_file_refused(tmp_path: Path) -> None:
    pem = tmp_path / "internal-ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    pip = (sys.executable, "-m", "pip", f"--cache-dir={tmp_path / 'cache'}")
    result = build_lambda_zip(
        tmp_path / "ca.zip",
        requirements=REQUIREMENTS,
        arch=local_arch(),
        python_version=LOCAL_PYTHON,
        pip=pip,
        ca_bundle=pem,
    )
    with zipfile.ZipFile(result.path) as archive:
        assert archive.read("hec-ca.pem") == pem.read_bytes()
    not_pem = tmp_path / "token.txt"
    not_pem.write_text("not a certificate")
    with pytest.raises(PackageError, match="holds no PEM certificate"):
        build_lambda_zip(tmp_path / "bad.zip", requirements=REQUIREMENTS, pip=pip, ca_bundle=not_pem)


# ------------------------------------------- the zip with exactly the template's environment

# What the Lambda Python runtime itself provides besides the standard library (AWS Lambda
# runtimes documentation: the SDK for Python and its dependencies); /var/task (the zip) comes first.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py")


def _runtime_dir(tmp_path: Path) -> Path:
    """A stand-in for the runtime's own site directory: links to this venv's boto3 and its deps."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    runtime = tmp_path / "var-runtime"
    runtime.mkdir()
    for name in RUNTIME_PACKAGES:
        (runtime / name).symlink_to(site / name)
    return runtime


def _template_environment(
    secret_arn: str = "",
    bucket: str = "",
    *,
    scenario: str = "lambda-defaults",
    function: str = "ForwarderFunction",
) -> dict[str, str]:
    """A function's environment as the template sets it for a scenario (parameters resolved)."""
    from ..unit.test_deploy_policy import scenario_deployment

    variables = scenario_deployment(scenario)["Resources"][function]["Properties"]
    resolved: dict[str, str] = {}
    references = {"HecTokenSecret": secret_arn, "SpoolBucket": bucket}
    for name, value in variables["Environment"]["Variables"].items():
        if isinstance(value, dict) and set(value) == {"Ref"}:
            resolved[name] = references[value["Ref"]]
        else:
            assert isinstance(value, str), (name, value)
            resolved[name] = value
    return resolved


RUNTIME_RUNNER = r"""
import json, sys
from hsmaudit.aws import firehose, subscription

class Context:
    function_name = "hsmaudit-forwarder"
    aws_request_id = "66666666-7777-8888-9999-000000000000"
    def get_remaining_time_in_millis(self):
        return 20_000

payloads = json.load(open(sys.argv[1]))
if sys.argv[2] == "firehose":
    print(json.dumps(firehose.handler(payloads["firehose"], Context())))
else:
    print(json.dumps(subscription.handler(payloads["subscription"][0], Context())))
"""


def test_the_packaged_forwarder_works_with_the_environment_the_template_sets(
    built: tuple[Path, Path, Any], loopback_hec: FaultHec, tmp_path: Path, moto_url: str
) -> None:
    import boto3

    # GIVEN the token secret and the spool bucket the stack would create (moto on 127.0.0.1)
    clients = {
        "endpoint_url": moto_url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",  # moto's fake credentials
    }
    secrets = boto3.client("secretsmanager", **clients)
    # Created empty, as the stack creates it (HecTokenSecretArn not given).
    secret_arn = secrets.create_secret(Name=f"hsmaudit/test-{tmp_path.name}/hec-token")["ARN"]
    bucket = f"hsmaudit-spool-{abs(hash(tmp_path)) % 10**8}"
    s3 = boto3.client("s3", **clients)
    s3.create_bucket(Bucket=bucket)
    environment_from_template = _template_environment(secret_arn, bucket)

    first, _, _ = built
    task = tmp_path / "task"
    with zipfile.ZipFile(first) as archive:
        archive.extractall(task)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    payload_file = tmp_path / "payloads.json"
    payloads = _payloads()
    payload_file.write_text(json.dumps(payloads))
    runtime = _runtime_dir(tmp_path)

    def invoke(hec_url: str) -> dict[str, Any]:
        return run({**environment_from_template, "HSMAUDIT_HEC_URL": hec_url}, "subscription")

    def run(function_environment: dict[str, str], handler: str) -> dict[str, Any]:
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{task}:{runtime}",  # /var/task first, then the runtime's packages
            "PYTHONNOUSERSITE": "1",
            **moto_environment(moto_url),
            # The template's variables; the one substitution (in `invoke`): the stack's https HEC
            # is the loopback HEC here.
            **function_environment,
        }
        completed = subprocess.run(
            [str(venv / "bin" / "python"), "-c", RUNTIME_RUNNER, str(payload_file), handler],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert TOKEN not in completed.stdout + completed.stderr
        result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        return result

    def spooled() -> list[str]:
        return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

    prefix = environment_from_template["HSMAUDIT_SPOOL_PREFIX"]
    expected = payloads["expected_records"]

    # WHEN deliveries arrive before anyone put the token: spooled under the role's prefix, not lost
    assert invoke(loopback_hec.url)["spooled"] == expected
    assert len(spooled()) == 1 and spooled()[0].startswith(prefix)
    assert loopback_hec.events() == []

    # WHEN the token is put as the README says ({"hec_token": ...}): every record arrives
    secrets.put_secret_value(SecretId=secret_arn, SecretString=json.dumps({"hec_token": TOKEN}))
    assert invoke(loopback_hec.url)["accepted"] == expected
    assert len(loopback_hec.events()) == expected

    # WHEN HEC is down: every record is spooled under the prefix the role may write
    assert invoke("http://127.0.0.1:9")["spooled"] == expected  # discard port: connection refused
    assert len(spooled()) == 2
    assert all(key.startswith(prefix) for key in spooled())

    # AND the Firehose transformation works with just the variables the template gives it
    transform_environment = _template_environment(scenario="firehose-defaults", function="TransformFunction")
    assert not any(
        name.startswith(("HSMAUDIT_HEC_URL", "HSMAUDIT_HEC_TOKEN")) for name in transform_environment
    )
    (record,) = run(transform_environment, "firehose")["records"]
    assert record["result"] == "Ok"
    lines = base64.b64decode(record["data"]).decode().splitlines()
    assert len([line for line in lines if line.strip()]) == payloads["expected_records"]


# ----------------------------------------------------------------------------------- bytecode


def test_compiled_builds_are_identical_and_load_their_bytecode(tmp_path: Path) -> None:
    from hsmaudit.ops.package import find_interpreter

    interpreter = find_interpreter(LOCAL_PYTHON, sys.executable)
    pip = (sys.executable, "-m", "pip", f"--cache-dir={tmp_path / 'cache'}")
    zips = [
        build_lambda_zip(
            tmp_path / name,
            requirements=REQUIREMENTS,
            arch=local_arch(),
            python_version=LOCAL_PYTHON,
            pip=pip,
            compile_with=interpreter,
        )
        for name in ("one.zip", "two.zip")
    ]
    assert zips[0].bytecode and zips[0].sha256 == zips[1].sha256
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(zips[0].path) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "task")
    assert f"hsmaudit/aws/__pycache__/subscription.{tag}.pyc" in names
    assert f"urllib3/__pycache__/connectionpool.{tag}.pyc" in names
    # The interpreter takes the handler's code from the pycs, not by compiling the sources again.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    completed = subprocess.run(
        [str(venv / "bin" / "python"), "-v", "-c", "import hsmaudit.aws.subscription"],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(tmp_path / "task"),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert (
        f"code object from '{tmp_path / 'task'}/hsmaudit/aws/__pycache__/subscription.{tag}.pyc'"
        in completed.stderr
    )


def test_compiling_with_an_interpreter_of_another_version_is_refused() -> None:
    from hsmaudit.ops.package import find_interpreter

    with pytest.raises(PackageError, match=r"is not CPython 3\.9"):
        find_interpreter("3.9", sys.executable)
