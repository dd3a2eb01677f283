"""`hsmaudit.ops.package` building blocks: the deterministic zip writer and the import walk."""

from __future__ import annotations

import ast
import io
import zipfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.ops.package import ZIP_EPOCH, _imported_names, _zip_time, write_zip

_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
_NAME = st.lists(_SEGMENT, min_size=1, max_size=4).map(lambda parts: "/".join(parts) + ".py")
_FILES = st.dictionaries(_NAME, st.binary(max_size=2048), min_size=1, max_size=12).filter(
    # a name cannot be both a file and a directory
    lambda files: not any(other.startswith(name[:-3] + "/") for name in files for other in files)
)


def _write(tmp: Path, files: dict[str, bytes], epoch: int) -> bytes:
    entries = {}
    for index, (name, data) in enumerate(sorted(files.items())):
        path = tmp / f"src-{index}"
        path.write_bytes(data)
        entries[name] = path
    output = tmp / "out.zip"
    write_zip(entries, output, epoch=epoch)
    return output.read_bytes()


@settings(max_examples=40, deadline=None)
@given(files=_FILES, epoch=st.integers(min_value=0, max_value=4_000_000_000))
def test_writing_the_same_files_twice_gives_the_same_bytes_and_the_files_round_trip(
    files: dict[str, bytes], epoch: int
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        first = _write(Path(one), files, epoch)
        # the same files written in the other order, from other places
        second = _write(Path(two), dict(reversed(list(files.items()))), epoch)
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {n for n in names if not n.endswith("/")} == set(files)
        for name, data in files.items():
            assert archive.read(name) == data
        for info in archive.infolist():
            assert info.date_time == _zip_time(epoch)
            parent = info.filename.rstrip("/").rpartition("/")[0]
            assert not parent or f"{parent}/" in names  # every directory has its entry


def test_zip_time_is_clamped_to_the_zip_epoch_and_in_utc() -> None:
    assert _zip_time(0) == (1980, 1, 1, 0, 0, 0)
    assert _zip_time(ZIP_EPOCH) == (1980, 1, 1, 0, 0, 0)
    assert _zip_time(1_700_000_000) == (2023, 11, 14, 22, 13, 20)
    assert _zip_time(1_700_000_001) == (2023, 11, 14, 22, 13, 20)  # DOS time: 2-second steps


def _names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    return set(_imported_names(ast.parse(source), module, is_package))


def test_relative_imports_resolve_against_the_module_or_package() -> None:
    assert "hsmaudit.sinks.hec" in _names("from ..sinks import hec", "hsmaudit.aws.subscription")
    assert "hsmaudit.aws.spool" in _names("from .spool import S3Spool", "hsmaudit.aws.subscription")
    assert "hsmaudit.aws.spool" in _names("from .spool import S3Spool", "hsmaudit.aws", is_package=True)
    assert "hsmaudit.records" in _names("from .. import records", "hsmaudit.aws.firehose")


def test_imports_inside_functions_count_and_type_checking_ones_do_not() -> None:
    source = (
        "import typing\n"
        "if typing.TYPE_CHECKING:\n    import hsmaudit.store\n"
        "def f():\n    import hsmaudit.aws.s3spool\n"
    )
    names = _names(source, "hsmaudit.sinks.spool")
    assert "hsmaudit.aws.s3spool" in names
    assert "hsmaudit.store" not in names


def test_every_runtime_dependency_of_the_project_is_pinned_for_the_lambda() -> None:
    # pyproject's `dependencies` are what the handlers may import besides the stdlib (style.md:
    # heavy ones live in extras); each must be in deploy/requirements-lambda.txt, pinned with a
    # hash, at a version pyproject accepts, or the zip would lack it.
    import tomllib

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[2]
    declared = [
        Requirement(r)
        for r in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    text = (root / "deploy" / "requirements-lambda.txt").read_text().replace("\\\n", " ")
    pinned = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line.split(" --hash", 1)[0].strip())
        assert "--hash=sha256:" in line, f"{requirement.name} is not pinned by hash"
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement.name} is not pinned to one version"
        pinned[requirement.name.lower()] = specifier.version
    for requirement in declared:
        name = requirement.name.lower()
        assert name in pinned, f"{name} is a runtime dependency but not in deploy/requirements-lambda.txt"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} violates {requirement}"
    assert not {"boto3", "botocore"} & set(pinned), "the Lambda runtime ships boto3"
