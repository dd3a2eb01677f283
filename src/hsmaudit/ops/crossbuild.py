"""Our C (the parser's `records/_scan.c`) built for the Lambda's architecture, not the build machine's.

The zip's hsmaudit code is pure Python plus this one extension, compiled here with Debian's GNU
cross compiler for the target (`aarch64-linux-gnu-gcc` for arm64, `x86_64-linux-gnu-gcc` for
x86_64, which is the native gcc on an x86_64 Debian) against CPython's stable ABI (abi3, 3.11 on),
so one build serves the template's python3.14 and any later runtime. Python's headers come from
Debian's `libpython3.X-dev` for the target (its multiarch pyconfig.h, e.g.
/usr/include/aarch64-linux-gnu/python3.11/pyconfig.h), nothing is downloaded.

Made to load on Lambda (Amazon Linux 2023, glibc 2.34) and to be the same bytes on every build:
every GLIBC symbol version it needs must be at most 2.17 (manylinux2014), checked with the
target's readelf after the build; no debug information, no build id, no `.comment`, stripped, and
the build directory mapped away (`-ffile-prefix-map`).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from hsmaudit.errors import HsmauditError

if TYPE_CHECKING:
    from hsmaudit.ops.package import Arch

# Archive name of each extension -> its C source, relative to the directory holding `hsmaudit`
# (the root setup.py's ext_modules; a test keeps the two equal).
EXTENSIONS: Final[dict[str, str]] = {"hsmaudit/records/_scan.abi3.so": "hsmaudit/records/_scan.c"}
# setup.py's Py_LIMITED_API: the oldest CPython the build loads in.
LIMITED_API: Final = 0x030B0000
_LIMITED_API_MINOR: Final = 11
# manylinux2014: what glibc 2.17 has, every Lambda runtime (Amazon Linux 2023: 2.34) has.
MAX_GLIBC: Final = (2, 17)
_TRIPLETS: Final = {"arm64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
_DEBIAN_ARCHES: Final = {"arm64": "arm64", "x86_64": "amd64"}
_CROSS_PACKAGES: Final = {"arm64": "gcc-aarch64-linux-gnu", "x86_64": "gcc-x86-64-linux-gnu"}
# ELF e_machine of each target: a build for the wrong machine is refused, never shipped.
_ELF_MACHINES: Final = {"arm64": 183, "x86_64": 62}
_HOST_MACHINES: Final = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}
_GLIBC_NEED: Final = re.compile(r"Name: GLIBC_(\d+)\.(\d+)(?:\.\d+)?\b")


class ToolchainMissing(HsmauditError):
    """No compiler or no Python headers for the target; the message names what to install."""


class CrossBuildError(HsmauditError):
    """The compiler ran but the extension cannot go in (compile error, too new a glibc, wrong machine)."""


@dataclass(frozen=True, slots=True)
class Toolchain:
    """What builds for one target: the compiler, its readelf, and Python's headers for it."""

    compiler: str
    readelf: str
    python_include: Path
    pyconfig: Path


def host_arch() -> str:
    """The build machine's architecture as a Lambda names it (arm64 / x86_64), or its own name."""
    machine = platform.machine().lower()
    return _HOST_MACHINES.get(machine, machine)


def compiler_package(arch: Arch) -> str:
    """The Debian package with the C compiler for `arch` on this machine."""
    return "gcc" if host_arch() == arch.value else _CROSS_PACKAGES[arch.value]


def install_hint(arch: Arch) -> str:
    """The apt command that provides the toolchain for `arch` (scripts/setup runs it)."""
    debian = _DEBIAN_ARCHES[arch.value]
    headers = f"libpython3.{_LIMITED_API_MINOR}-dev:{debian}"
    packages = f"{compiler_package(arch)} {headers}"
    if host_arch() == arch.value:
        return f"apt-get install {packages}"
    return f"dpkg --add-architecture {debian} && apt-get update && apt-get install {packages}"


def _python_headers(arch: Arch) -> tuple[Path, Path] | None:
    """(directory with Python.h, the target's pyconfig.h): Debian's multiarch headers, the oldest
    version from 3.11 on (the limited API's), else the running Python's when it is for `arch`."""
    triplet = _TRIPLETS[arch.value]
    for minor in range(_LIMITED_API_MINOR, 40):
        include = Path(f"/usr/include/python3.{minor}")
        pyconfig = Path(f"/usr/include/{triplet}/python3.{minor}/pyconfig.h")
        if (include / "Python.h").is_file() and pyconfig.is_file():
            return include, pyconfig
    if host_arch() == arch.value and sys.version_info >= (3, _LIMITED_API_MINOR):
        include = Path(sysconfig.get_paths()["include"])
        if (include / "Python.h").is_file() and (include / "pyconfig.h").is_file():
            return include, include / "pyconfig.h"
    return None


def find_toolchain(arch: Arch) -> Toolchain:
    """The toolchain for `arch`, or `ToolchainMissing` naming the Debian packages to install."""
    triplet = _TRIPLETS[arch.value]
    compiler = shutil.which(f"{triplet}-gcc")
    readelf = shutil.which(f"{triplet}-readelf")
    if compiler is None or readelf is None:
        raise ToolchainMissing(
            f"no C compiler for {arch.value} ({triplet}-gcc and {triplet}-readelf, Debian package "
            f"{compiler_package(arch)}); install: {install_hint(arch)}"
        )
    headers = _python_headers(arch)
    if headers is None:
        raise ToolchainMissing(
            f"no Python headers for {arch.value} (/usr/include/{triplet}/python3.X/pyconfig.h, "
            f"Debian package libpython3.{_LIMITED_API_MINOR}-dev:{_DEBIAN_ARCHES[arch.value]}); "
            f"install: {install_hint(arch)}"
        )
    return Toolchain(compiler=compiler, readelf=readelf, python_include=headers[0], pyconfig=headers[1])


def compile_command(
    toolchain: Toolchain, source: Path, output: Path, include: Path, build_dir: Path
) -> list[str]:
    """The compiler's arguments: setup.py's (-O2, the limited API) plus what makes the bytes reproducible."""
    return [
        toolchain.compiler,
        "-O2",
        "-g0",
        "-fPIC",
        "-shared",
        "-fno-ident",
        "-DNDEBUG",
        f"-DPy_LIMITED_API={LIMITED_API:#010x}",
        f"-ffile-prefix-map={build_dir}=.",
        f"-ffile-prefix-map={source.parent}=.",
        f"-I{include}",
        "-Wl,--build-id=none",
        "-Wl,-s",
        "-Wl,-z,noexecstack",
        "-Wl,-z,relro,-z,now",
        "-o",
        str(output),
        str(source),
    ]


def glibc_versions(readelf: str, library: Path) -> list[tuple[int, int]]:
    """Every GLIBC_x.y version `library` needs (its version-needs section), sorted."""
    completed = subprocess.run(
        [readelf, "-W", "--version-info", str(library)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if completed.returncode != 0:
        raise CrossBuildError(f"{readelf} could not read {library.name}: {completed.stderr.strip()}")
    return sorted({(int(major), int(minor)) for major, minor in _GLIBC_NEED.findall(completed.stdout)})


def elf_machine(library: Path) -> int:
    """The ELF header's e_machine (little-endian ELF64, as both Lambda architectures are)."""
    header = library.read_bytes()[:20]
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        raise CrossBuildError(f"{library.name} is not a little-endian 64-bit ELF file")
    return int.from_bytes(header[18:20], "little")


def build_extensions(arch: Arch, source_root: Path, build_dir: Path) -> dict[str, Path]:
    """Compile every extension of `EXTENSIONS` for `arch` into `build_dir`; archive name -> .so.

    Raises `ToolchainMissing` when the compiler or the headers are absent, `CrossBuildError` when
    the build fails or its result could not load on Lambda (glibc past 2.17, another machine).
    """
    toolchain = find_toolchain(arch)
    include = build_dir / "include"
    shutil.copytree(toolchain.python_include, include, dirs_exist_ok=True)
    # Debian's own pyconfig.h only picks the multiarch one by the compiler's macros from
    # /usr/include, which a cross compiler must not search: the target's takes its place.
    (include / "pyconfig.h").unlink(missing_ok=True)
    shutil.copyfile(toolchain.pyconfig, include / "pyconfig.h")
    built: dict[str, Path] = {}
    for name, source_name in EXTENSIONS.items():
        source = source_root / source_name
        if not source.is_file():
            continue
        output = build_dir / Path(name).name
        completed = subprocess.run(
            compile_command(toolchain, source, output, include, build_dir),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            cwd=build_dir,
        )
        if completed.returncode != 0:
            errors = [line for line in completed.stderr.splitlines() if "error" in line] or [
                f"exit code {completed.returncode}"
            ]
            raise CrossBuildError(
                f"{Path(toolchain.compiler).name} could not build {source_name}: {errors[0]}"
            )
        if elf_machine(output) != _ELF_MACHINES[arch.value]:
            raise CrossBuildError(f"{Path(toolchain.compiler).name} built {source_name} for another machine")
        too_new = [v for v in glibc_versions(toolchain.readelf, output) if v > MAX_GLIBC]
        if too_new:
            raise CrossBuildError(
                f"{source_name} built for {arch.value} needs GLIBC_{too_new[-1][0]}.{too_new[-1][1]}, past "
                f"manylinux2014's {MAX_GLIBC[0]}.{MAX_GLIBC[1]}: it might not load on Lambda"
            )
        built[name] = output
    return built
