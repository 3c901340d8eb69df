"""Where a provider call leaves from: the proxy the environment names and the authorities TLS trusts.

Both HTTP transports read these the way httpx does with `trust_env=True`, so a shop behind a
corporate egress proxy or a private CA configures omnisdk as it does every other Python client:

* `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` (any case) name an `http://` proxy per scheme, with
  optional `user:password@`; `NO_PROXY` lists hosts (and their subdomains), `host:port`, IP
  addresses or networks (CIDR) that go direct, or `*` for every host;
* `SSL_CERT_FILE` (a PEM bundle) or `SSL_CERT_DIR` (a hashed folder) replace certifi's authorities.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import urllib.request
from base64 import b64encode
from collections.abc import Mapping

import attrs
import certifi
import httpx

__all__ = ["EnvironmentProxies", "Proxy", "tls_context"]


@attrs.frozen
class Proxy:
    """An HTTP proxy: where to connect, and the `Proxy-Authorization` header its URL's credentials give."""

    url: str
    host: str
    port: int
    authorization: bytes | None
    #: The URL as configured, credentials included (httpx's own transport takes it for HEAD requests).
    source: str

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parsed = httpx.URL(url if "://" in url else f"http://{url}")
        if parsed.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// proxies are supported, not {parsed.scheme}://")
        authorization = None
        if parsed.username or parsed.password:
            pair = f"{parsed.username}:{parsed.password}".encode()
            authorization = b"Basic " + b64encode(pair)
        return cls(url=str(parsed.copy_with(username=None, password=None)), host=parsed.host,
                   port=parsed.port or 80, authorization=authorization, source=url)

    def __repr__(self) -> str:  # the credentials stay out of logs and tracebacks
        return f"Proxy({self.url!r})"


@attrs.frozen
class EnvironmentProxies:
    """The proxy URL per scheme ("http", "https", "all") and the `NO_PROXY` entries, read once."""

    proxies: Mapping[str, str]
    bypass: tuple[str, ...]

    @classmethod
    def read(cls) -> EnvironmentProxies:
        """From `os.environ`, as urllib reads it (lower-case names win)."""
        found = urllib.request.getproxies_environment()
        bypass = tuple(entry.strip() for entry in found.get("no", "").split(",") if entry.strip())
        return cls({k: v for k, v in found.items() if k in ("http", "https", "all") and v}, bypass)

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy a request to `scheme://host:port` goes through, or None to connect directly."""
        url = self.proxies.get(scheme) or self.proxies.get("all")
        if not url or _bypassed(host, port, self.bypass):
            return None
        return Proxy.parse(url)


def _bypassed(host: str, port: int, entries: tuple[str, ...]) -> bool:
    """Whether `NO_PROXY` sends `host:port` direct: `*`, the host or a parent domain, an address or network."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for entry in entries:
        if entry == "*":
            return True
        name, entry_port = entry, ""
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            name, _, entry_port = entry.rpartition(":")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".").lower().strip("[]")
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
        elif host.lower() == name or host.lower().endswith("." + name):
            return True
    return False


def tls_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """A verifying client context over `SSL_CERT_FILE`/`SSL_CERT_DIR` when set (and trusted), else
    certifi's authorities."""
    cafile = os.environ.get("SSL_CERT_FILE") if trust_env else None
    capath = os.environ.get("SSL_CERT_DIR") if trust_env else None
    if cafile and os.path.isfile(cafile):
        context = ssl.create_default_context(cafile=cafile)
    elif capath and os.path.isdir(capath):
        context = ssl.create_default_context(capath=capath)
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context
