"""Building the Splunk app package: layout AppInspect accepts, rendered versions, reproducible bytes."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from hsmaudit import __version__
from hsmaudit.splunk.errors import AppVersionError, SplunkAppError
from hsmaudit.splunk.package import (
    APP_ID,
    app_contents,
    app_source_dir,
    build_app,
    is_packaged,
    package_name,
    render_app_conf,
    render_manifest,
    splunk_version,
)


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def read_member(path: Path, name: str) -> str:
    with tarfile.open(path, "r:gz") as tar:
        handle = tar.extractfile(f"{APP_ID}/{name}")
        assert handle is not None
        return handle.read().decode("utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_app(tmp_path_factory.mktemp("dist")).path


def test_the_package_is_named_after_the_app_and_version(built: Path) -> None:
    assert built.name == f"hsmaudit-{splunk_version(__version__)}.tgz" == package_name()


def test_everything_sits_under_one_hsmaudit_directory_with_owner_permissions(built: Path) -> None:
    entries = members(built)
    assert {name.split("/")[0] for name in entries} == {APP_ID}
    for name, member in entries.items():
        assert member.isdir() or member.isfile(), f"{name}: links are not allowed"
        assert member.mode & 0o700 == (0o700 if member.isdir() else 0o600), name
        assert not any(part.startswith(".") for part in name.split("/")), name
        assert "/local/" not in name + "/" and not name.endswith((".pyc", "local.meta")), name
    for required in (
        "default/app.conf",
        "metadata/default.meta",
        "README.md",
        "app.manifest",
        "default/props.conf",
    ):
        assert f"{APP_ID}/{required}" in entries, required


def test_every_source_file_is_packaged(built: Path) -> None:
    source = app_source_dir()
    expected = {
        f"{APP_ID}/{p.relative_to(source).as_posix()}"
        for p in source.rglob("*")
        if p.is_file() and is_packaged(p.relative_to(source))
    }
    packaged = {name for name, member in members(built).items() if member.isfile()}
    assert packaged == expected


def test_the_packaged_app_conf_carries_the_package_version(built: Path) -> None:
    text = read_member(built, "default/app.conf")
    assert text.count(f"version = {splunk_version(__version__)}") == 2


def test_two_builds_are_byte_identical_and_follow_source_date_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_app(tmp_path / "a")
    second = build_app(tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 and first.size == first.path.stat().st_size
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    third = build_app(tmp_path / "c")
    assert {m.mtime for m in members(third.path).values()} == {1700000000}
    assert third.sha256 != first.sha256


def test_hidden_local_and_compiled_files_never_ship(tmp_path: Path) -> None:
    source = tmp_path / "hsmaudit_app"
    shutil.copytree(app_source_dir(), source)
    junk = [
        ".DS_Store", "default/.props.conf.swp", "local/app.conf", "metadata/local.meta", "bin/__pycache__/x.pyc",
        "default/props.conf~", "__MACOSX/._README.md", ".git/config",
    ]  # fmt: skip
    for name in junk:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("junk")
    contents = app_contents(source)
    assert not set(junk) & set(contents)
    assert "default/app.conf" in contents


def test_a_tree_without_app_conf_is_not_an_app(tmp_path: Path) -> None:
    with pytest.raises(SplunkAppError, match="not a Splunk app source tree"):
        build_app(tmp_path / "out", source=tmp_path)


def test_an_unwritable_output_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SplunkAppError, match="cannot write"):
        build_app(blocker / "sub")
    assert not list(tmp_path.glob("**/.hsmaudit-*"))


@pytest.mark.parametrize(
    ("version", "semver"),
    [("0.1.0", "0.1.0"), ("1.2", "1.2.0"), ("0.2.0rc1", "0.2.0-rc1"), ("1.0.0.dev3", "1.0.0-dev3"),
     ("2.0.0-beta.1", "2.0.0-beta.1"), ("1.0.0.post2", "1.0.0-post2")],
)  # fmt: skip
def test_package_versions_become_semver(version: str, semver: str) -> None:
    assert splunk_version(version) == semver


@pytest.mark.parametrize("version", ["", "one", "1", "1.0.0.0.0", "v1.0.0"])
def test_a_version_without_semver_form_is_refused(version: str) -> None:
    with pytest.raises(AppVersionError):
        splunk_version(version)


def test_only_id_and_launcher_versions_are_rendered() -> None:
    text = (
        "[install]\nversion = 9\n\n[id]\nname = hsmaudit\nversion = 0.0.1\n\n[launcher]\r\nversion=0.0.1\r\n"
    )
    rendered = render_app_conf(text, "3.4.5")
    assert rendered == text.replace("version = 0.0.1", "version = 3.4.5").replace(
        "version=0.0.1", "version=3.4.5"
    )


def test_manifest_version_is_rendered_and_a_manifest_without_one_is_refused() -> None:
    manifest = '{"info": {"id": {"group": null, "name": "hsmaudit", "version": "0.0.1"}, "title": "x"}}'
    assert '"version": "7.0.0"' in render_manifest(manifest, "7.0.0")
    with pytest.raises(SplunkAppError, match=r"app\.manifest"):
        render_manifest('{"info": {}}', "7.0.0")


def test_packaged_props_is_the_rendered_template(built: Path) -> None:
    source = (app_source_dir() / "default" / "props.conf").read_text(encoding="utf-8")
    assert read_member(built, "default/props.conf") == source


def test_an_archive_can_be_extracted_safely(built: Path, tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(built.read_bytes()), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / APP_ID / "default" / "app.conf").is_file()


def test_refresh_sources_rewrites_stale_generated_parts_and_then_nothing(tmp_path: Path) -> None:
    from hsmaudit.splunk.package import refresh_sources
    from hsmaudit.splunk.studio import SIMPLE_VIEW, STUDIO_VIEW

    source = tmp_path / "hsmaudit_app"
    shutil.copytree(app_source_dir(), source)
    props = source / "default" / "props.conf"
    lines = props.read_text(encoding="utf-8").splitlines(keepends=True)
    stale = [line for line in lines if not line.startswith("LOOKUP-hsmaudit_a_opcode")]
    props.write_text("".join(stale), encoding="utf-8")
    (source / "lookups" / "hsmaudit_opcodes.csv").unlink()
    simple = source / SIMPLE_VIEW
    simple.write_text(
        simple.read_text(encoding="utf-8").replace("<title>Keys deleted</title>", "<title>Gone</title>")
    )
    assert refresh_sources(source) == ["default/props.conf", "lookups/hsmaudit_opcodes.csv", STUDIO_VIEW]
    assert props.read_text(encoding="utf-8") == "".join(lines)
    assert '"title": "Gone"' in (source / STUDIO_VIEW).read_text(encoding="utf-8")
    assert refresh_sources(source) == []


def test_the_build_renders_the_studio_view_from_the_simple_view(tmp_path: Path) -> None:
    from hsmaudit.splunk.studio import SIMPLE_VIEW, STUDIO_VIEW

    source = tmp_path / "hsmaudit_app"
    shutil.copytree(app_source_dir(), source)
    simple = source / SIMPLE_VIEW
    simple.write_text(
        simple.read_text(encoding="utf-8").replace("<title>Keys deleted</title>", "<title>Gone</title>")
    )
    assert b'"title": "Gone"' in app_contents(source)[STUDIO_VIEW]


def test_a_symbolic_link_in_the_sources_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "hsmaudit_app"
    shutil.copytree(app_source_dir(), source)
    (source / "default" / "linked.conf").symlink_to(source / "default" / "tags.conf")
    with pytest.raises(SplunkAppError, match="symbolic links"):
        app_contents(source)
