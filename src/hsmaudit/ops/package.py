"""The Lambda zip builder: what `hsmaudit package` builds, reproducibly (no Typer, no Rich).

The zip holds exactly what the two Lambda entry points need, nothing else:

* the hsmaudit subpackages reachable by static imports from `hsmaudit.aws.subscription` and
  `hsmaudit.aws.firehose` (an AST walk, so imports inside functions count; whole subpackages are
  taken so that package data and plug points resolved by name come along), never `cli`;
* the third-party wheels pinned with hashes in `deploy/requirements-lambda.txt`, installed by pip
  for the Lambda platform (`manylinux2014_<arch>`, CPython `--python-version`, binary wheels only),
  so the build machine's OS, architecture and Python do not matter;
* no boto3: every AWS Lambda Python runtime ships it (AWS Lambda runtimes documentation);
* the parser's C match (`records/_scan.c`) built for the target architecture by Debian's cross
  compiler (`hsmaudit.ops.crossbuild`), when that toolchain is here (`compiled`: auto, yes, no);
  without it the zip is pure Python and the parser runs the same match as a regex.

Reproducible: entries sorted, every timestamp `SOURCE_DATE_EPOCH` (default 1980-01-01, the zip
epoch), fixed permissions, and no bytecode unless asked for (`pip --no-compile`; `--compile` adds
hash-based pycs made by an interpreter of the target version, see `compile_bytecode`), so two
builds of the same tree and pins give the same bytes and the same sha256 (given the same zlib;
`contents_sha256` does not depend on the compressor at all).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

import hsmaudit
from hsmaudit.errors import HsmauditError
from hsmaudit.ops.crossbuild import CrossBuildError, ToolchainMissing, build_extensions

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

# The Lambda entry points (contracts: "Names every part shares"); the template's Handler values.
HANDLER_MODULES: Final[tuple[str, ...]] = (
    "hsmaudit.aws.subscription",
    "hsmaudit.aws.firehose",
    "hsmaudit.aws.autosubscribe",
)
# Never in the Lambda, even if something reached them: Typer/Rich, Starlette/uvicorn and pySigma
# live there (style.md, "Keep the Lambda artefact free of CLI and server dependencies").
EXCLUDED_SUBPACKAGES: Final[frozenset[str]] = frozenset({"cli", "server"})
# The runtime `deploy/template.yaml` declares; a test keeps the two equal.
DEFAULT_PYTHON_VERSION: Final = "3.14"
REQUIREMENTS_FILE: Final = Path("deploy") / "requirements-lambda.txt"
# `--ca-bundle` goes here in the zip: /var/task/hec-ca.pem on Lambda (template parameter HecCaBundle).
CA_BUNDLE_NAME: Final = "hec-ca.pem"
# 1980-01-01T00:00:00Z, the earliest time a zip entry can carry.
ZIP_EPOCH: Final = 315532800
_SKIPPED_NAMES: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SKIPPED_SUFFIXES: Final = (".pyc", ".pyo")
_OWN_COMPILED_SUFFIXES: Final = (".c", ".so", ".pyi")
"""Of our own files, the parser's C match (`records/_scan.c`, its stub and the host's build of it)
is never copied: the host's build is for the machine that made it, not for the Lambda's
architecture and libc. What goes in instead is a build for the target (`--compiled`, see
`hsmaudit.ops.crossbuild`), as `hsmaudit/records/_scan.abi3.so`. The wheels' own extensions
(msgspec) are for the Lambda's platform and go in."""
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")


class Arch(StrEnum):
    """Lambda instruction set architectures (the template's `Architectures`)."""

    arm64 = "arm64"
    x86_64 = "x86_64"

    @property
    def pip_platform(self) -> str:
        """pip's platform tag for this architecture on Lambda (Amazon Linux 2023, glibc 2.34)."""
        return "manylinux2014_aarch64" if self is Arch.arm64 else "manylinux2014_x86_64"


class Compiled(StrEnum):
    """Whether the parser's C match goes in: `auto` when the target's toolchain is here, `yes`
    (fail without it), `no` (pure Python)."""

    auto = "auto"
    yes = "yes"
    no = "no"


class PackageError(HsmauditError):
    """The zip could not be built; the message says what and what next (no traceback)."""


@dataclass(frozen=True, slots=True)
class PackageResult:
    """What was built: printed as one JSON line by `hsmaudit package`."""

    path: str
    sha256: str
    bytes: int
    files: int
    arch: str
    python_version: str
    runtime: str
    modules: tuple[str, ...]
    bytecode: bool = False
    contents_sha256: str = ""
    compiled: bool = False
    # Why the C match is not in (empty when it is): the missing toolchain and how to install it.
    compiled_note: str = ""


# --- which hsmaudit code goes in -------------------------------------------------------------


def _is_type_checking_block(node: ast.stmt) -> bool:
    """`if TYPE_CHECKING:` imports exist only for mypy, never at run time."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Absolute names of every module a source file imports at run time (any depth)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and _is_type_checking_block(node):
            skipped.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base_parts = parts if is_package else parts[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            # `from hsmaudit.sinks import hec` imports the module hsmaudit.sinks.hec.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _module_file(source_root: Path, module: str) -> tuple[Path, bool] | None:
    """The source file of an hsmaudit module and whether it is a package, or None."""
    relative = Path(*module.split("."))
    package_init = source_root / relative / "__init__.py"
    if package_init.is_file():
        return package_init, True
    plain = source_root / relative.with_suffix(".py")
    if plain.is_file():
        return plain, False
    return None


def reachable_modules(source_root: Path, entry_points: Iterable[str] = HANDLER_MODULES) -> list[str]:
    """Every hsmaudit module the entry points import, directly or not, sorted.

    `source_root` is the directory that holds the `hsmaudit` package. Raises `PackageError` when an
    entry point does not exist (the handler module has not been written or was renamed).
    """
    pending = list(entry_points)
    for entry in pending:
        if _module_file(source_root, entry) is None:
            raise PackageError(f"handler module {entry} not found under {source_root}")
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        found = _module_file(source_root, module)
        if found is None:
            continue  # `from hsmaudit.x import SomeClass`: the name is not a module
        seen.add(module)
        path, is_package = found
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for name in _imported_names(tree, module, is_package):
            if name == "hsmaudit" or name.startswith("hsmaudit."):
                pending.append(name)
    return sorted(seen)


def _source_files(source_root: Path, modules: Iterable[str]) -> dict[str, Path]:
    """Archive name -> file for the hsmaudit code: whole subpackages of the reached modules."""
    package_dir = source_root / "hsmaudit"
    files: dict[str, Path] = {}
    subpackages: set[str] = set()
    for module in modules:
        parts = module.split(".")
        if len(parts) == 1:
            continue
        if (package_dir / parts[1]).is_dir():
            subpackages.add(parts[1])
        else:
            path = package_dir / f"{parts[1]}.py"
            files[f"hsmaudit/{parts[1]}.py"] = path
    leaked = subpackages & EXCLUDED_SUBPACKAGES
    if leaked:
        raise PackageError(
            f"the Lambda handlers import hsmaudit.{sorted(leaked)[0]}, which must never be in the Lambda "
            "(CLI/server dependencies); move the shared code out of it"
        )
    files["hsmaudit/__init__.py"] = package_dir / "__init__.py"
    for name in sorted(subpackages):
        for path in _walk_files(package_dir / name):
            if not path.name.endswith(_OWN_COMPILED_SUFFIXES):
                files[path.relative_to(source_root).as_posix()] = path
    return files


def _walk_files(root: Path) -> Iterator[Path]:
    """Regular files under `root`, without caches and bytecode."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_NAMES]
        for filename in filenames:
            if not filename.endswith(_SKIPPED_SUFFIXES):
                yield Path(dirpath) / filename


# --- third-party wheels ----------------------------------------------------------------------


def install_requirements(
    requirements: Path, target: Path, *, arch: Arch, python_version: str, pip: Sequence[str] | None = None
) -> None:
    """pip-install the pinned wheels for the Lambda platform into `target`.

    `--only-binary=:all:` with `--platform`/`--python-version` makes pip pick the Lambda's wheels
    whatever the build machine is; `--require-hashes` rejects any wheel not pinned by hash;
    `--no-compile` keeps bytecode (and its timestamps) out of the zip.
    """
    command = [
        *(pip or (sys.executable, "-m", "pip")),
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--require-hashes",
        "--only-binary=:all:",
        "--implementation=cp",
        f"--platform={arch.pip_platform}",
        f"--python-version={python_version}",
        f"--target={target}",
        f"--requirement={requirements}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        last = next(
            (line.strip() for line in reversed(completed.stderr.splitlines()) if line.strip()),
            f"exit code {completed.returncode}",
        )
        raise PackageError(f"pip could not install {requirements} for {arch.value}/{python_version}: {last}")
    # `--target` may leave console scripts here; the Lambda never runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)


# --- bytecode --------------------------------------------------------------------------------

# Where Lambda unpacks the zip; compiled code names its source files there (tracebacks).
LAMBDA_TASK_ROOT: Final = "/var/task"


def find_interpreter(python_version: str, explicit: str | None = None) -> str:
    """A CPython of exactly `python_version` to compile with: `explicit`, else `python3.X` on PATH."""
    candidate = explicit or shutil.which(f"python{python_version}")
    if candidate is None:
        raise PackageError(
            f"--compile needs a python{python_version} interpreter (none on PATH); pass --compile-with"
        )
    probe = subprocess.run(
        [
            candidate,
            "-c",
            "import sys; print(f'{sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}')",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if probe.returncode != 0 or probe.stdout.strip() != f"cpython {python_version}":
        found = probe.stdout.strip() or "no answer"
        raise PackageError(f"{candidate} is not CPython {python_version} ({found}); pass --compile-with")
    return candidate


def compile_bytecode(entries: dict[str, Path], staging: Path, interpreter: str) -> dict[str, Path]:
    """Compile every .py of `entries` with the target interpreter; returns the .pyc entries.

    Lambda's /var/task is read-only, so without bytecode in the zip every cold start compiles
    every imported module again (measured: the handler's import takes half the time with it).
    Deterministic: unchecked-hash pycs carry no timestamps, `-d /var/task` fixes the embedded
    paths, and PYTHONHASHSEED=0 fixes the order of frozenset constants.
    """
    tree = staging / "task"
    for name, path in entries.items():
        if name.endswith(".py"):
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    command = [
        interpreter,
        "-m",
        "compileall",
        "-q",
        "-d",
        LAMBDA_TASK_ROOT,
        "--invalidation-mode",
        "unchecked-hash",
        str(tree),
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": ""}
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, env=environment, timeout=600
    )
    if completed.returncode != 0:
        last = (completed.stdout + completed.stderr).strip().splitlines()[-1:] or ["no output"]
        raise PackageError(f"compiling the Lambda code failed: {last[0]}")
    return {
        path.relative_to(tree).as_posix(): path
        for path in tree.rglob("*.pyc")
        if path.parent.name == "__pycache__"
    }


# --- the zip ---------------------------------------------------------------------------------


def _zip_time(epoch: int) -> tuple[int, int, int, int, int, int]:
    """A zip timestamp (UTC) from epoch seconds, as the format stores it: from 1980, in 2-second steps."""
    t = time.gmtime(max(epoch, ZIP_EPOCH))
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


def contents_digest(entries: dict[str, Path]) -> str:
    """sha256 over every archive name and its file's sha256, in name order.

    The zip's own sha256 also depends on the deflate implementation (zlib and zlib-ng compress the
    same bytes differently); this one does not, so two machines can compare what they packaged.
    """
    digest = hashlib.sha256()
    for name in sorted(entries):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(entries[name].read_bytes()).digest())
    return digest.hexdigest()


def write_zip(entries: dict[str, Path], output: Path, *, epoch: int) -> int:
    """Write `entries` (archive name -> file) deterministically; returns the number of files.

    Sorted names, directory entries for every parent, one timestamp, 0644 files and 0755
    directories (what Lambda needs: world-readable code), deflate level 9. Written to a temporary
    file and renamed, so a failed build never leaves a half zip where `sam deploy` would take it.
    """
    date_time = _zip_time(epoch)
    directories = {str(Path(name).parent.as_posix()) for name in entries}
    all_dirs: set[str] = set()
    for directory in directories:
        parts = directory.split("/")
        all_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)) if parts[0] != ".")
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            for name in sorted({f"{d}/" for d in all_dirs} | set(entries)):
                info = zipfile.ZipInfo(name, date_time=date_time)
                info.create_system = 3  # Unix, so external_attr carries permissions
                if name.endswith("/"):
                    info.external_attr = (0o40755 << 16) | 0x10
                    archive.writestr(info, b"")
                else:
                    info.external_attr = 0o100644 << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
        Path(temporary).replace(output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(entries)


def find_project_root(start: Path | None = None) -> Path | None:
    """The checkout that holds `deploy/requirements-lambda.txt`: from `start` (cwd) upwards,
    then from the installed hsmaudit sources upwards (an editable install in a checkout)."""
    candidates = [start or Path.cwd(), Path(hsmaudit.__file__).resolve().parent]
    for candidate in candidates:
        for directory in (candidate, *candidate.parents):
            if (directory / REQUIREMENTS_FILE).is_file():
                return directory
    return None


def default_output(root: Path, arch: Arch) -> Path:
    """`dist/hsmaudit-lambda-<arch>.zip` in the checkout: the template's CodeUri for arm64."""
    return root / "dist" / f"hsmaudit-lambda-{arch.value}.zip"


def build_lambda_zip(
    output: Path,
    *,
    requirements: Path,
    arch: Arch = Arch.arm64,
    python_version: str = DEFAULT_PYTHON_VERSION,
    source_root: Path | None = None,
    epoch: int | None = None,
    pip: Sequence[str] | None = None,
    ca_bundle: Path | None = None,
    compile_with: str | None = None,
    compiled: Compiled = Compiled.auto,
) -> PackageResult:
    """Build the Lambda zip at `output` and describe it.

    `source_root` (the directory holding the `hsmaudit` package) defaults to the running
    hsmaudit's own sources; `epoch` to `SOURCE_DATE_EPOCH` or 1980-01-01. `ca_bundle`, a PEM file
    of CA certificates for a privately signed HEC, is added as `hec-ca.pem` at the zip's root.
    `compile_with`, a CPython of `python_version`, adds bytecode (see `compile_bytecode`).
    `compiled`: whether our C goes in, built for `arch` (auto: when the toolchain is here; yes:
    `PackageError` naming the Debian packages when it is not).
    """
    compiled = Compiled(compiled)
    if not _PYTHON_VERSION.match(python_version):
        raise PackageError(f"--python-version must look like 3.14, not {python_version!r}")
    if not requirements.is_file():
        raise PackageError(f"requirements file {requirements} not found; pass --requirements")
    root = source_root or Path(hsmaudit.__file__).resolve().parent.parent
    if epoch is None:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", ZIP_EPOCH))
    modules = reachable_modules(root)
    entries = _source_files(root, modules)
    if ca_bundle is not None:
        if b"-----BEGIN CERTIFICATE-----" not in ca_bundle.read_bytes():
            raise PackageError(f"{ca_bundle} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        entries[CA_BUNDLE_NAME] = ca_bundle
    with tempfile.TemporaryDirectory(prefix="hsmaudit-package-") as staging:
        site = Path(staging) / "site"
        install_requirements(requirements, site, arch=arch, python_version=python_version, pip=pip)
        for path in _walk_files(site):
            name = path.relative_to(site).as_posix()
            if name.split("/", 1)[0] in {"hsmaudit", "boto3", "botocore"}:
                raise PackageError(f"{requirements} installs {name.split('/', 1)[0]}; it must not")
            entries[name] = path
        native, note = _compiled_entries(compiled, arch, root, Path(staging) / "native")
        entries.update(native)
        if compile_with is not None:
            entries.update(compile_bytecode(entries, Path(staging), compile_with))
        count = write_zip(entries, output, epoch=epoch)
        contents = contents_digest(entries)
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    return PackageResult(
        path=str(output),
        sha256=digest,
        bytes=output.stat().st_size,
        files=count,
        arch=arch.value,
        python_version=python_version,
        runtime=f"python{python_version}",
        modules=tuple(modules),
        bytecode=compile_with is not None,
        contents_sha256=contents,
        compiled=bool(native),
        compiled_note=note,
    )


def _compiled_entries(
    compiled: Compiled, arch: Arch, root: Path, build_dir: Path
) -> tuple[dict[str, Path], str]:
    """Our extensions built for `arch` (archive name -> file) and, when there are none, why.

    A missing toolchain is fatal only with `yes`; a build that fails or could not load on Lambda
    always is (the C is broken, and silently shipping less would hide it).
    """
    if compiled is Compiled.no:
        return {}, "not asked for (--compiled no)"
    build_dir.mkdir(parents=True)
    try:
        built = build_extensions(arch, root, build_dir)
    except ToolchainMissing as missing:
        if compiled is Compiled.yes:
            raise PackageError(f"--compiled yes: {missing}") from None
        return {}, str(missing)
    except CrossBuildError as failed:
        raise PackageError(str(failed)) from None
    if not built:
        if compiled is Compiled.yes:
            raise PackageError(f"--compiled yes, but {root} holds no C source of hsmaudit")
        return {}, "no C source in the tree"
    return built, ""
