"""The AWS Region every boto3 client of ours uses, resolved in one place.

boto3 reads only `AWS_DEFAULT_REGION` (and the profile's `region`), while the AWS CLI v2, the
SDKs for other languages and Lambda itself set and honour `AWS_REGION`. Our messages tell people
to set `AWS_REGION`, so we must read it: precedence is `--region` > `AWS_REGION` >
`AWS_DEFAULT_REGION` > the profile's `region` (which boto3's session reads itself).

Stdlib only: imported by the Lambda's secret and spool clients before boto3 is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

REGION_VARIABLES: Final = ("AWS_REGION", "AWS_DEFAULT_REGION")
"""Environment variables that name the Region, in order of precedence."""

NO_REGION_FIX: Final = (
    "give --region, or set AWS_REGION (or AWS_DEFAULT_REGION, or `region` in your AWS profile)"
)
"""What to do when no Region is configured: one wording for every command."""


def resolve_region(region: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The Region from the flag, else `AWS_REGION`, else `AWS_DEFAULT_REGION`; None leaves it to
    the profile (boto3's session reads `region` from the AWS config file).

    >>> resolve_region(environ={"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"})
    'eu-west-1'
    >>> resolve_region("ap-south-1", environ={"AWS_REGION": "eu-west-1"})
    'ap-south-1'
    """
    if region and region.strip():
        return region.strip()
    env = os.environ if environ is None else environ
    for name in REGION_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def region_source(region: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """Where `resolve_region` found the Region: `--region`, a variable's name, or `the AWS profile`."""
    if region and region.strip():
        return "--region"
    env = os.environ if environ is None else environ
    for name in REGION_VARIABLES:
        if env.get(name, "").strip():
            return name
    return "the AWS profile"
