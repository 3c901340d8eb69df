"""Which proxy a provider call goes through, read from the environment as httpx reads it."""

from __future__ import annotations

import httpx
import pytest

from omnisdk.delivery._egress import EnvironmentProxies, Proxy


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def proxy_url(scheme: str, host: str, port: int) -> str | None:
    proxy = EnvironmentProxies.read().proxy_for(scheme, host, port)
    return proxy.url if proxy else None


def test_each_scheme_has_its_proxy_and_all_proxy_covers_the_rest(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://egress.shop.internal:3128")
    environment.setenv("ALL_PROXY", "http://fallback.shop.internal:8080")
    assert proxy_url("https", "api.twilio.com", 443) == "http://egress.shop.internal:3128"
    assert proxy_url("http", "api.twilio.com", 80) == "http://fallback.shop.internal:8080"


def test_lower_case_names_win(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://upper:3128")
    environment.setenv("https_proxy", "http://lower:3128")
    assert proxy_url("https", "api.sendgrid.com", 443) == "http://lower:3128"


@pytest.mark.parametrize(("no_proxy", "host", "port", "direct"), [
    ("*", "api.twilio.com", 443, True),
    ("twilio.com", "api.twilio.com", 443, True),        # a domain covers its subdomains
    (".twilio.com", "api.twilio.com", 443, True),
    ("twilio.com", "nottwilio.com", 443, False),        # but not a name that merely ends the same
    ("api.twilio.com:8443", "api.twilio.com", 443, False),
    ("api.twilio.com:443", "api.twilio.com", 443, True),
    ("10.0.0.0/8", "10.1.2.3", 443, True),
    ("10.0.0.0/8", "192.168.1.1", 443, False),
    ("::1", "::1", 443, True),
    (" localhost , 127.0.0.1 ", "127.0.0.1", 80, True),
], ids=lambda value: str(value))
def test_no_proxy_sends_the_hosts_it_names_direct(
    environment: pytest.MonkeyPatch, no_proxy: str, host: str, port: int, direct: bool,
) -> None:
    environment.setenv("HTTPS_PROXY", "http://egress:3128")
    environment.setenv("NO_PROXY", no_proxy)
    assert (proxy_url("https", host, port) is None) is direct


def test_credentials_go_in_the_proxy_header_and_never_in_its_repr() -> None:
    proxy = Proxy.parse("http://shop:p%40ss@egress:3128")
    assert (proxy.host, proxy.port, proxy.authorization) == ("egress", 3128, b"Basic c2hvcDpwQHNz")
    assert "p%40ss" not in repr(proxy) and "p@ss" not in repr(proxy) and "shop" not in repr(proxy)


def test_a_proxy_that_is_not_http_is_refused_by_name() -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="socks5"):
        Proxy.parse("socks5://egress:1080")
