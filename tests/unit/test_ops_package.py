"""`hsmaudit.ops.package`, the Lambda zip builder, called in-process on prepared source trees.

pip is the one subprocess the engine runs; here its seam (`pip=`) is a tiny Python that lays a
fixed "wheel" into `--target`, so the zip layout, excludes, digests and refusals are tested without
the network or a real install (the real pip build is `tests/integration/test_package.py`).
"""

from __future__ import annotations

import ast
import hashlib
import stat
import sys
import zipfile
from typing import TYPE_CHECKING, Any

import pytest

from hsmaudit.ops.crossbuild import EXTENSIONS, LIMITED_API, ToolchainMissing, find_toolchain, host_arch
from hsmaudit.ops.package import (
    CA_BUNDLE_NAME,
    REQUIREMENTS_FILE,
    ZIP_EPOCH,
    Arch,
    Compiled,
    PackageError,
    PackageResult,
    _source_files,
    _zip_time,
    build_lambda_zip,
    contents_digest,
    default_output,
    find_project_root,
    reachable_modules,
    write_zip,
)

from ..conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

# A stand-in for `python -m pip install ... --target=DIR`: writes one package, a console script
# (which the builder must drop) and, when asked, a package the Lambda must never carry.
_FAKE_PIP = """
import pathlib, sys
target = pathlib.Path(next(a for a in sys.argv if a.startswith("--target=")).split("=", 1)[1])
(target / "wheelpkg").mkdir(parents=True)
(target / "wheelpkg" / "__init__.py").write_text("VALUE = 1\\n")
(target / "wheelpkg-1.0.dist-info").mkdir()
(target / "wheelpkg-1.0.dist-info" / "RECORD").write_text("wheelpkg/__init__.py,,\\n")
(target / "bin").mkdir()
(target / "bin" / "wheelpkg").write_text("#!/bin/sh\\n")
if "boto3" in pathlib.Path(next(a for a in sys.argv if a.startswith("--requirement=")).split("=", 1)[1]).read_text():
    (target / "boto3").mkdir()
    (target / "boto3" / "__init__.py").write_text("")
"""
_FAILING_PIP = (
    "import sys; print('ERROR: No matching distribution found for nothing==0', file=sys.stderr); sys.exit(1)"
)

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _source_tree(root: Path, extra: dict[str, str] | None = None) -> Path:
    """A minimal hsmaudit with the three handlers, a reached and an unreached subpackage."""
    return _tree(
        root,
        {
            "hsmaudit/__init__.py": "",
            "hsmaudit/errors.py": "",
            "hsmaudit/aws/__init__.py": "",
            "hsmaudit/aws/subscription.py": "from hsmaudit.records import event\nimport hsmaudit.errors\n",
            "hsmaudit/aws/firehose.py": "",
            "hsmaudit/aws/autosubscribe.py": "",
            "hsmaudit/records/__init__.py": "",
            "hsmaudit/records/event.py": "",
            "hsmaudit/records/data/opcodes.json": "{}",
            "hsmaudit/records/__pycache__/event.cpython-314.pyc": "bytecode",
            "hsmaudit/records/stale.pyc": "bytecode",
            "hsmaudit/cli/__init__.py": "import typer\n",
            "hsmaudit/ops/__init__.py": "",
            **(extra or {}),
        },
    )


def _build(tmp_path: Path, source: Path, **options: Any) -> tuple[Path, PackageResult]:
    requirements = tmp_path / "requirements.txt"
    if not requirements.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        requirements.write_text("wheelpkg==1.0 --hash=sha256:00\n")
    output = tmp_path / "dist" / "lambda.zip"
    result = build_lambda_zip(
        output,
        requirements=requirements,
        source_root=source,
        pip=(sys.executable, "-c", _FAKE_PIP),
        **options,
    )
    return output, result


def test_the_import_walk_reaches_the_handlers_imports_and_their_parent_packages(tmp_path: Path) -> None:
    root = _source_tree(tmp_path)
    assert reachable_modules(root) == [
        "hsmaudit",
        "hsmaudit.aws",
        "hsmaudit.aws.autosubscribe",
        "hsmaudit.aws.firehose",
        "hsmaudit.aws.subscription",
        "hsmaudit.errors",
        "hsmaudit.records",
        "hsmaudit.records.event",
    ]


def test_source_files_take_whole_subpackages_with_data_and_leave_out_bytecode_and_caches(
    tmp_path: Path,
) -> None:
    root = _source_tree(tmp_path)
    files = _source_files(root, reachable_modules(root))
    assert set(files) == {
        "hsmaudit/__init__.py",
        "hsmaudit/errors.py",
        "hsmaudit/aws/__init__.py",
        "hsmaudit/aws/autosubscribe.py",
        "hsmaudit/aws/firehose.py",
        "hsmaudit/aws/subscription.py",
        "hsmaudit/records/__init__.py",
        "hsmaudit/records/event.py",
        "hsmaudit/records/data/opcodes.json",
    }
    assert all(path == root / name for name, path in files.items())


def test_the_hosts_build_of_our_c_never_goes_in_and_with_compiled_no_nothing_of_it_does(
    tmp_path: Path,
) -> None:
    """records/_scan.c and a host build of it are for the build machine, not the Lambda (the wheels'
    own extensions, msgspec's, go in: integration/test_package.py)."""
    compiled = {
        "hsmaudit/records/_scan.c": "/* C */",
        "hsmaudit/records/_scan.pyi": "def scan(message: str) -> None: ...",
        "hsmaudit/records/_scan.abi3.so": "ELF",
        "hsmaudit/records/_scan.cpython-311-x86_64-linux-gnu.so": "ELF",
    }
    root = _source_tree(tmp_path / "src", compiled)
    assert not set(compiled) & set(_source_files(root, reachable_modules(root)))
    output, result = _build(tmp_path, root, compiled=Compiled.no)
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
    assert not [
        name for name in names if name.startswith("hsmaudit/") and name.endswith((".c", ".so", ".pyi"))
    ]
    assert "hsmaudit/records/event.py" in names
    assert (result.compiled, result.compiled_note) == (False, "not asked for (--compiled no)")


# A module that imports: what the builder compiles must be a real extension, not just any C.
_TINY_EXTENSION = """
#include <Python.h>
#include <string.h>
static PyObject *scan(PyObject *self, PyObject *arg) { return PyLong_FromSize_t(strlen(PyUnicode_AsUTF8(arg))); }
static PyMethodDef methods[] = {{"scan", scan, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};
PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
"""


def _needs_toolchain(arch: Arch) -> None:
    try:
        find_toolchain(arch)
    except ToolchainMissing as missing:
        pytest.skip(str(missing))


def test_with_the_toolchain_the_zip_holds_our_c_built_for_the_target_not_the_hosts_build(
    tmp_path: Path,
) -> None:
    _needs_toolchain(Arch.arm64)
    root = _source_tree(
        tmp_path / "src",
        {"hsmaudit/records/_scan.c": _TINY_EXTENSION, "hsmaudit/records/_scan.abi3.so": "host build"},
    )
    output, result = _build(tmp_path, root, arch=Arch.arm64)
    with zipfile.ZipFile(output) as archive:
        library = archive.read("hsmaudit/records/_scan.abi3.so")
        names = archive.namelist()
    assert result.compiled and result.compiled_note == ""
    assert library[:4] == b"\x7fELF" and int.from_bytes(library[18:20], "little") == 183  # EM_AARCH64
    assert b"PyInit__scan" in library
    assert not [n for n in names if n.endswith((".c", ".pyi"))]
    # the same bytes from another build directory (no paths, no build id)
    again, _ = _build(tmp_path / "again", root, arch=Arch.arm64)
    assert again.read_bytes() == output.read_bytes()


@pytest.mark.skipif(host_arch() != "x86_64", reason="checks the cross package an x86_64 machine needs")
def test_without_a_compiler_auto_says_why_and_yes_fails_naming_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _source_tree(tmp_path / "src", {"hsmaudit/records/_scan.c": _TINY_EXTENSION})
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a machine with no cross compiler (pip runs by full path)
    _, result = _build(tmp_path, root, arch=Arch.arm64)
    assert not result.compiled
    assert (
        "gcc-aarch64-linux-gnu" in result.compiled_note
        and "dpkg --add-architecture arm64" in result.compiled_note
    )
    with pytest.raises(
        PackageError, match=r"--compiled yes: no C compiler for arm64 .*gcc-aarch64-linux-gnu"
    ):
        _build(tmp_path / "yes", root, arch=Arch.arm64, compiled=Compiled.yes)


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("int broken( {", "could not build hsmaudit/records/_scan.c"),
        # arc4random is glibc 2.36: a Lambda (2.34) could not load it
        ("#include <stdlib.h>\nunsigned draw(void) { return arc4random(); }\n", "needs GLIBC_2.36"),
    ],
)
def test_c_that_fails_to_build_or_could_not_load_on_lambda_fails_the_package(
    tmp_path: Path, source: str, refusal: str
) -> None:
    _needs_toolchain(Arch.arm64)
    root = _source_tree(tmp_path / "src", {"hsmaudit/records/_scan.c": source})
    with pytest.raises(PackageError, match=refusal):
        _build(tmp_path, root, arch=Arch.arm64)


def test_the_builder_compiles_what_setup_py_declares() -> None:
    """setup.py's ext_modules (the editable install) and the zip's EXTENSIONS are the same C."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    declared = {
        call.args[0].value: [element.value for element in keyword.value.elts]  # type: ignore[attr-defined]
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Extension"
        for keyword in call.keywords
        if keyword.arg == "sources"
    }
    expected = {
        name.removesuffix(".abi3.so").replace("/", "."): [f"src/{source}"]
        for name, source in EXTENSIONS.items()
    }
    assert declared == expected
    limited = next(
        keyword.value.elts[0].elts[1].value  # type: ignore[attr-defined]
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        for keyword in call.keywords
        if keyword.arg == "define_macros"
    )
    assert int(limited, 16) == LIMITED_API


@pytest.mark.parametrize("excluded", ["cli", "server"])
def test_a_handler_that_reaches_the_cli_or_the_server_is_refused(tmp_path: Path, excluded: str) -> None:
    root = _source_tree(
        tmp_path,
        {
            "hsmaudit/aws/firehose.py": f"def handler(e, c):\n    from hsmaudit.{excluded} import app\n",
            f"hsmaudit/{excluded}/__init__.py": "",
            f"hsmaudit/{excluded}/app.py": "",
        },
    )
    with pytest.raises(PackageError, match=f"import hsmaudit.{excluded}, which must never be in the Lambda"):
        _source_files(root, reachable_modules(root))


def test_the_zip_has_fixed_permissions_timestamps_and_a_directory_entry_for_every_parent(
    tmp_path: Path,
) -> None:
    entries = _tree(tmp_path / "in", {"a/b/c.py": "print(1)\n", "top.txt": "x"})
    names = {"a/b/c.py": entries / "a/b/c.py", "top.txt": entries / "top.txt"}
    output = tmp_path / "out" / "lambda.zip"
    assert write_zip(names, output, epoch=ZIP_EPOCH + 3) == 2
    with zipfile.ZipFile(output) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    assert list(infos) == ["a/", "a/b/", "a/b/c.py", "top.txt"]
    for name, info in infos.items():
        mode = info.external_attr >> 16
        assert info.date_time == _zip_time(ZIP_EPOCH + 3) == (1980, 1, 1, 0, 0, 2)
        if name.endswith("/"):
            assert stat.S_ISDIR(mode)
            assert stat.S_IMODE(mode) == 0o755
        else:
            assert stat.S_ISREG(mode)
            assert stat.S_IMODE(mode) == 0o644
            assert info.compress_type == zipfile.ZIP_DEFLATED
    assert sorted(p.name for p in output.parent.iterdir()) == ["lambda.zip"]  # no temporary left


def test_a_zip_that_cannot_be_written_leaves_neither_a_half_zip_nor_a_temporary(tmp_path: Path) -> None:
    output = tmp_path / "lambda.zip"
    with pytest.raises(FileNotFoundError):
        write_zip({"gone.py": tmp_path / "does-not-exist.py"}, output, epoch=ZIP_EPOCH)
    assert list(tmp_path.iterdir()) == []


def test_the_contents_digest_depends_on_names_and_bytes_not_on_where_the_files_are(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", {"x.py": "a", "y.py": "b"})
    two = _tree(tmp_path / "two", {"elsewhere/x": "a", "elsewhere/y": "b"})
    digest = contents_digest({"x.py": one / "x.py", "y.py": one / "y.py"})
    assert digest == contents_digest({"y.py": two / "elsewhere/y", "x.py": two / "elsewhere/x"})
    assert digest != contents_digest({"x.py": one / "y.py", "y.py": one / "x.py"})
    assert digest != contents_digest({"x.py": one / "x.py", "z.py": one / "y.py"})
    # what the digest is: sha256 over name, NUL and each file's sha256, in name order
    expected = hashlib.sha256()
    for name, data in (("x.py", b"a"), ("y.py", b"b")):
        expected.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    assert digest == expected.hexdigest()


def test_a_build_holds_the_code_the_wheels_and_the_ca_bundle_and_is_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a source tree, a fake pip and a CA bundle, with SOURCE_DATE_EPOCH set
    root = _source_tree(tmp_path / "src")
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(_CERTIFICATE)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(ZIP_EPOCH + 86_400))
    # WHEN it is built twice
    output, result = _build(tmp_path / "one", root, ca_bundle=bundle, arch=Arch.x86_64, python_version="3.13")
    again, _ = _build(tmp_path / "two", root, ca_bundle=bundle, arch=Arch.x86_64, python_version="3.13")
    # THEN both zips are the same bytes, and the result describes them
    assert output.read_bytes() == again.read_bytes()
    assert result.sha256 == hashlib.sha256(output.read_bytes()).hexdigest()
    assert result.bytes == output.stat().st_size
    assert (result.arch, result.python_version, result.runtime) == ("x86_64", "3.13", "python3.13")
    assert result.bytecode is False
    assert "hsmaudit.cli" not in result.modules
    with zipfile.ZipFile(output) as archive:
        files = [name for name in archive.namelist() if not name.endswith("/")]
        assert archive.read(CA_BUNDLE_NAME) == _CERTIFICATE
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 2, 0, 0, 0)}
    assert result.files == len(files)
    assert {"wheelpkg/__init__.py", "wheelpkg-1.0.dist-info/RECORD", "hsmaudit/aws/subscription.py"} <= set(
        files
    )
    assert not [name for name in files if name.startswith(("bin/", "hsmaudit/cli/", "hsmaudit/ops/"))]
    assert not [name for name in files if name.endswith(".pyc")]


def test_requirements_that_install_boto3_are_refused_and_leave_no_zip(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("boto3==1.0 --hash=sha256:00\n")
    with pytest.raises(PackageError, match="installs boto3; it must not"):
        _build(tmp_path, _source_tree(tmp_path / "src"))
    assert not (tmp_path / "dist" / "lambda.zip").exists()


def test_a_failing_pip_is_reported_by_its_last_line(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("nothing==0\n")
    with pytest.raises(PackageError, match=r"for arm64/3\.14: ERROR: No matching distribution found"):
        build_lambda_zip(
            tmp_path / "lambda.zip",
            requirements=requirements,
            source_root=_source_tree(tmp_path / "src"),
            pip=(sys.executable, "-c", _FAILING_PIP),
        )
    assert not (tmp_path / "lambda.zip").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("python_version", "--python-version must look like 3.14, not '314'"),
        ("requirements", "requirements file .* not found; pass --requirements"),
        ("ca_bundle", "holds no PEM certificate"),
        ("source_root", "handler module hsmaudit.aws.subscription not found"),
    ],
)
def test_bad_inputs_are_refused_before_pip_runs(tmp_path: Path, change: str, message: str) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate")
    options: dict[str, Any] = {
        "requirements": requirements,
        "source_root": _source_tree(tmp_path / "src"),
        "pip": (sys.executable, "-c", "raise SystemExit('pip must not run')"),
    }
    options.update(
        {
            "python_version": {"python_version": "314"},
            "requirements": {"requirements": tmp_path / "missing.txt"},
            "ca_bundle": {"ca_bundle": not_pem},
            "source_root": {"source_root": tmp_path / "empty"},
        }[change]
    )
    with pytest.raises(PackageError, match=message):
        build_lambda_zip(tmp_path / "lambda.zip", **options)


def test_the_project_root_is_the_nearest_directory_with_the_lambda_requirements(tmp_path: Path) -> None:
    checkout = _tree(tmp_path / "checkout", {str(REQUIREMENTS_FILE): ""})
    deep = checkout / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == checkout
    assert default_output(checkout, Arch.arm64) == checkout / "dist" / "hsmaudit-lambda-arm64.zip"


def test_each_architecture_names_the_lambda_platform_tag_pip_needs() -> None:
    assert Arch.arm64.pip_platform == "manylinux2014_aarch64"
    assert Arch.x86_64.pip_platform == "manylinux2014_x86_64"
