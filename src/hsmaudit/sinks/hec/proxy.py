"""The HTTP(S) proxy for HEC requests: a urllib3 `ProxyManager` with basic auth from its URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3


def proxy_manager(proxy: str, pool_options: dict[str, Any]) -> urllib3.ProxyManager:
    """A ProxyManager for `proxy`, with basic auth from its URL (never logged)."""
    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the HEC proxy must be an http:// or https:// URL")
    headers = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers = urllib3.make_headers(proxy_basic_auth=credentials)
    bare = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib3.ProxyManager(bare, proxy_headers=headers, **pool_options)
