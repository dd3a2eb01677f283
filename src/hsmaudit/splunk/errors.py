"""Errors of the Splunk app packaging (one family, as every hsmaudit package has).

SplunkAppError            the app cannot be built from these sources
├── KnowledgeError        props.conf's generated blocks are missing, unknown or duplicated
└── AppVersionError       the version cannot be written as the SemVer Splunk requires
"""

from __future__ import annotations

from hsmaudit.errors import HsmauditError


class SplunkAppError(HsmauditError):
    """The Splunk app cannot be built; the message says what to fix."""


class KnowledgeError(SplunkAppError):
    """A props.conf template whose generated blocks are missing, unknown or unbalanced."""


class AppVersionError(SplunkAppError):
    """A package version that has no SemVer form (AppInspect check_version_is_valid_semver)."""


class StudioError(SplunkAppError):
    """The Simple XML view uses something the Dashboard Studio rendering does not translate."""
