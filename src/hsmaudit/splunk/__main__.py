"""`python -m hsmaudit.splunk`: re-render the generated parts of the app's source tree.

Run it after changing the opcode table (`hsmaudit.records.opcodes`) or the Simple XML dashboard;
the tests fail while props.conf's generated blocks or the Studio view are stale.
"""

from __future__ import annotations

from hsmaudit.splunk.package import app_source_dir, refresh_sources


def main() -> None:
    """Refresh the generated sources and say which files changed."""
    changed = refresh_sources()
    root = app_source_dir()
    for name in changed:
        print(f"updated {root / name}")
    if not changed:
        print(f"{root}: generated sources are up to date")


if __name__ == "__main__":
    main()
