"""The handler's import cost in modules: nothing heavy until it is needed (style.md, Lambda habits).

Run in fresh interpreters, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .fault_hec import TOKEN

HEAVY = (
    "typer",
    "rich",
    "starlette",
    "uvicorn",
    "sigma",
    "boto3",
    "botocore",
    "aws_lambda_powertools",
    "jinja2",
)


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    script = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env, timeout=60
    )
    return {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}


def test_importing_the_handlers_pulls_in_nothing_heavy() -> None:
    modules = imported_after("import hsmaudit.aws.subscription, hsmaudit.aws.firehose")
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_boto3_stays_out_of_an_invocation_with_a_local_spool_and_a_plain_token(tmp_path: Path) -> None:
    code = f"""
import base64, gzip, json, os
os.environ.update(HSMAUDIT_HEC_URL="http://127.0.0.1:9", HSMAUDIT_HEC_TOKEN={TOKEN!r},
                  HSMAUDIT_SPOOL_DIR={str(tmp_path)!r}, HSMAUDIT_HEC_MAX_ATTEMPTS="1", HSMAUDIT_METRICS="false")
from hsmaudit.aws.subscription import handler
doc = {{"messageType": "DATA_MESSAGE", "logGroup": "/aws/cloudhsm/cluster-x", "logStream": "hsm-y",
       "logEvents": [{{"id": "1", "timestamp": 1, "message": "Time: 01/16/18 01:48:49.824999, usecs:1516067329824999"}}]}}
data = base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()
assert handler({{"awslogs": {{"data": data}}}}, None)["spooled"] == 1
"""
    env = {"PATH": "/usr/bin:/bin"}
    modules = imported_after(code, env)
    assert "boto3" not in modules and "botocore" not in modules
