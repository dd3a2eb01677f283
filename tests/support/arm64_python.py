"""An arm64 CPython 3.11 to run the arm64 Lambda zip on this machine: Debian's own, under qemu-user.

The tree is Debian bookworm's python3.11 for arm64 and the libraries it loads, fetched with
`apt-get download` (needs `dpkg --add-architecture arm64` and `apt-get update`: scripts/setup does
both) and unpacked with `dpkg -x` into a cache folder, never installed; `qemu-aarch64 -L TREE`
runs it. `python -m tests.support.arm64_python` makes the tree ahead of the tests (scripts/setup).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

# python3.11 and what it and the zip's code load (hashlib's OpenSSL, gzip's zlib, json, ctypes...).
PACKAGES: Final = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "libgcc-s1",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libuuid1",
)
QEMU: Final = "qemu-aarch64"


def cache_root() -> Path:
    """/var/cache/hsmaudit when it can be written (root, as CI), else the user's cache."""
    system = Path("/var/cache/hsmaudit")
    try:
        system.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hsmaudit"
    return system if os.access(system, os.W_OK) else Path.home() / ".cache" / "hsmaudit"


def sysroot_path() -> Path:
    return cache_root() / "sysroot-arm64-python3.11"


def interpreter(root: Path) -> list[str]:
    """The command that starts the tree's python3.11 under qemu."""
    return [QEMU, "-L", str(root), str(root / "usr" / "bin" / "python3.11")]


def why_not() -> str | None:
    """Why the arm64 Python cannot be had here (None when it can): what to install."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} not found (Debian package qemu-user; scripts/setup installs it)"
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "no apt-get/dpkg to fetch Debian's arm64 python3.11"
    return None


def ensure_sysroot() -> Path:
    """The unpacked tree, made once (atomically: a half-made tree is never taken)."""
    root = sysroot_path()
    stamp = root / ".packages"
    wanted = "\n".join(PACKAGES) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sysroot-", dir=root.parent) as work:
        debs = Path(work) / "debs"
        tree = Path(work) / "tree"
        debs.mkdir()
        tree.mkdir()
        completed = subprocess.run(
            ["apt-get", "download", "-q", *(f"{name}:arm64" for name in PACKAGES)],
            cwd=debs,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                "apt-get download of Debian's arm64 python3.11 failed (dpkg --add-architecture arm64 && "
                f"apt-get update?): {completed.stderr.strip().splitlines()[-1:]}"
            )
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True, capture_output=True, timeout=120)
        (tree / ".packages").write_text(wanted)
        if stamp.is_file() and stamp.read_text() == wanted:
            return root  # another process made it meanwhile: keep the one that may be in use
        shutil.rmtree(root, ignore_errors=True)  # a stale tree (another package list)
        tree.rename(root)
    return root


if __name__ == "__main__":
    reason = why_not()
    if reason is not None:
        raise SystemExit(f"arm64 python: {reason}")
    made = ensure_sysroot()
    probe = subprocess.run(
        [*interpreter(made), "-I", "-c", "import platform; print(platform.machine())"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if probe.stdout.strip() != "aarch64":
        raise SystemExit(f"arm64 python in {made} does not run: {probe.stderr.strip()}")
    print(f"arm64 python: {made}")
