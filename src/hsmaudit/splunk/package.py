"""The Splunk app as one uploadable file: `hsmaudit-<version>.tgz` with a single `hsmaudit/` directory.

The app's sources ship as package data in `hsmaudit/splunk/hsmaudit_app/`. Building renders the
few things that must follow the Python package (the version in app.conf and app.manifest, the
opcode-derived blocks of props.conf, eventtypes.conf and tags.conf, the lookup tables) and packs
the rest as is, following what AppInspect checks
(splunk.md §2.1, §3.1): exactly one top-level directory named after the app id, no
hidden files, no `local/` or `local.meta`, no compiled Python, owner rw on files and rwx on
directories. The tarball is reproducible: sorted entries, fixed owners, modes and times
(`SOURCE_DATE_EPOCH` when set), so the same sources always give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Final

from hsmaudit import __version__
from hsmaudit.splunk.errors import AppVersionError, SplunkAppError
from hsmaudit.splunk.knowledge.blocks import refresh_knowledge, render_generated
from hsmaudit.splunk.studio import SIMPLE_VIEW, STUDIO_VIEW, render_studio_view

APP_ID: Final = "hsmaudit"
"""The app id: app.conf [package] id, [id] name, and the tarball's top directory."""

# 1980-01-01, the zip epoch: a fixed time for reproducible archives when SOURCE_DATE_EPOCH is unset.
DEFAULT_MTIME: Final = 315_532_800
FILE_MODE: Final = 0o644
DIR_MODE: Final = 0o755

# What never goes into the package: AppInspect fails hidden files (and then skips every check),
# local/ and local.meta are the admin's, compiled Python is rejected.
_EXCLUDED_DIRS: Final = frozenset({"local", "__pycache__"})
_EXCLUDED_SUFFIXES: Final = (".pyc", ".pyo", "~", ".swp", ".orig", ".rej", ".tmp")
_EXCLUDED_NAMES: Final = frozenset({"local.meta", "Thumbs.db", "desktop.ini"})

_SEMVER: Final = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_PEP440: Final = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[.-]?(a|b|rc|dev|post)[.-]?(\d*))?$")
_VERSION_LINE: Final = re.compile(r"^(version[ \t]*=[ \t]*)[^\r\n]*$", re.MULTILINE)
_STANZA: Final = re.compile(r"^\[([^\]\r\n]*)\][ \t]*$", re.MULTILINE)
_MANIFEST_VERSION: Final = re.compile(r'("id"\s*:\s*\{[^{}]*?"version"\s*:\s*)"[^"]*"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class BuiltApp:
    """What `build_app` wrote: the tarball, its version, how many files and its checksum."""

    path: Path
    version: str
    files: int
    size: int
    sha256: str


def app_source_dir() -> Path:
    """The app's source tree inside the installed package (`hsmaudit/splunk/hsmaudit_app`)."""
    return Path(str(files("hsmaudit.splunk").joinpath("hsmaudit_app")))


def splunk_version(version: str) -> str:
    """The package version in the SemVer form app.conf needs: `0.2.0rc1` -> `0.2.0-rc1`.

    Raises `AppVersionError` for a version with no such form.
    """
    if _SEMVER.match(version):
        return version
    match = _PEP440.match(version)
    if match is None:
        raise AppVersionError(f"version {version!r} has no SemVer form; Splunk apps need MAJOR.MINOR.PATCH")
    major, minor, patch, tag, number = match.groups()
    semver = f"{major}.{minor}.{patch or 0}"
    return f"{semver}-{tag}{number or 0}" if tag else semver


def is_packaged(relative: Path) -> bool:
    """Whether a file (path relative to the app root) belongs in the package."""
    parts = relative.parts
    if any(part.startswith(".") or part in _EXCLUDED_DIRS for part in parts):
        return False
    name = parts[-1]
    return name not in _EXCLUDED_NAMES and not name.endswith(_EXCLUDED_SUFFIXES)


def iter_app_files(root: Path) -> Iterator[Path]:
    """Every file of the app under `root` that goes into the package, sorted, relative to `root`.

    Raises `SplunkAppError` for a symbolic link: Splunk apps may not contain links, and silently
    leaving one out would ship an app without that file.
    """
    found = []
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        dirnames[:] = [d for d in dirnames if is_packaged((base / d).relative_to(root))]
        for name in [*dirnames, *filenames]:
            if (base / name).is_symlink() and is_packaged((base / name).relative_to(root)):
                raise SplunkAppError(
                    f"{base / name}: symbolic links cannot go into a Splunk app; copy the file"
                )
        for filename in filenames:
            relative = (base / filename).relative_to(root)
            if is_packaged(relative):
                found.append(relative)
    yield from sorted(found, key=lambda path: path.as_posix())


def render_app_conf(text: str, version: str) -> str:
    """app.conf with `version` set in [id] and [launcher], the stanzas AppInspect reads it from."""
    lines = text.splitlines(keepends=True)
    stanza = ""
    for index, line in enumerate(lines):
        header = _STANZA.match(line.rstrip("\r\n"))
        if header:
            stanza = header.group(1).strip()
        elif stanza in ("id", "launcher"):
            lines[index] = (
                _VERSION_LINE.sub(lambda m: m.group(1) + version, line.rstrip("\r\n"))
                + line[len(line.rstrip("\r\n")) :]
            )
    return "".join(lines)


def render_manifest(text: str, version: str) -> str:
    """app.manifest with info.id.version set (it must equal app.conf's)."""
    rendered, count = _MANIFEST_VERSION.subn(lambda m: f'{m.group(1)}"{version}"', text, count=1)
    if count != 1:
        raise SplunkAppError('app.manifest: no "id": {"version": ...} to set')
    return rendered


def render_app_file(relative: str, data: bytes, version: str) -> bytes:
    """The packaged content of one source file: rendered for the few generated ones, else as is."""
    if relative == "default/app.conf":
        return render_app_conf(data.decode("utf-8"), version).encode("utf-8")
    if relative == "app.manifest":
        return render_manifest(data.decode("utf-8"), version).encode("utf-8")
    return render_generated(relative, data)


def app_contents(source: Path | None = None, *, version: str = __version__) -> dict[str, bytes]:
    """The packaged files, path relative to the app root -> content, in archive order."""
    root = source or app_source_dir()
    if not (root / "default" / "app.conf").is_file():
        raise SplunkAppError(f"{root}: not a Splunk app source tree (no default/app.conf)")
    semver = splunk_version(version)
    contents: dict[str, bytes] = {}
    for relative in iter_app_files(root):
        name = relative.as_posix()
        contents[name] = render_app_file(name, (root / relative).read_bytes(), semver)
    if SIMPLE_VIEW in contents:
        contents[STUDIO_VIEW] = render_studio_view(contents[SIMPLE_VIEW].decode("utf-8")).encode("utf-8")
    return dict(sorted(contents.items()))


def refresh_sources(source: Path | None = None) -> list[str]:
    """Re-render the generated parts of the source tree (props.conf blocks, the Studio view).

    The developer's chore after changing the opcode table or the Simple XML view
    (`python -m hsmaudit.splunk`); returns the files it changed. Tests fail while they are stale.
    """
    root = source or app_source_dir()
    changed = refresh_knowledge(root)
    simple = root / SIMPLE_VIEW
    studio = root / STUDIO_VIEW
    rendered = render_studio_view(simple.read_text(encoding="utf-8"))
    if not studio.is_file() or studio.read_text(encoding="utf-8") != rendered:
        studio.write_text(rendered, encoding="utf-8")
        changed.append(STUDIO_VIEW)
    return changed


def _mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else DEFAULT_MTIME


def _tar_entry(name: str, *, directory: bool, size: int = 0, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = DIR_MODE if directory else FILE_MODE
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def pack_app(contents: dict[str, bytes], *, mtime: int | None = None) -> bytes:
    """A gzip'd tar of `contents` under `hsmaudit/`, with directory entries, byte-reproducible."""
    stamp = _mtime() if mtime is None else mtime
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tar_entry(APP_ID, directory=True, mtime=stamp))
        made: set[str] = set()
        for name in sorted(contents):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    tar.addfile(_tar_entry(f"{APP_ID}/{directory}", directory=True, mtime=stamp))
            data = contents[name]
            entry = _tar_entry(f"{APP_ID}/{name}", directory=False, size=len(data), mtime=stamp)
            tar.addfile(entry, io.BytesIO(data))
    out = io.BytesIO()
    # filename="" and a fixed mtime keep the gzip header free of build-specific bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=stamp, compresslevel=9) as gz:
        gz.write(buffer.getvalue())
    return out.getvalue()


def package_name(version: str = __version__) -> str:
    """`hsmaudit-<semver>.tgz`, the name Splunkbase and `splunk install app` expect."""
    return f"{APP_ID}-{splunk_version(version)}.tgz"


def build_app(output_dir: Path, *, source: Path | None = None, version: str = __version__) -> BuiltApp:
    """Build `hsmaudit-<version>.tgz` into `output_dir` (created if needed) and describe it.

    The file is written under a temporary name and renamed, so a reader never sees half a package.
    Raises `SplunkAppError` when the sources cannot make an app or the file cannot be written.
    """
    contents = app_contents(source, version=version)
    data = pack_app(contents)
    target = output_dir / package_name(version)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".hsmaudit-", suffix=".tgz.tmp", dir=output_dir)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            Path(temporary).chmod(FILE_MODE)
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise SplunkAppError(f"{target}: cannot write ({error.strerror or error})") from None
    return BuiltApp(
        path=target,
        version=splunk_version(version),
        files=len(contents),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
