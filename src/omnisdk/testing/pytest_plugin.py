"""pytest plugin (entry point `pytest11`): fixtures every omnisdk user and plugin vendor gets.

Loaded by pytest in any environment where omnisdk is installed, so it imports only what a
fixture needs, when the fixture is used (aiosmtpd and cryptography are test extras).

- `virtual_clock`: a `VirtualClock` at a fixed start.
- `omni_factory`: `omni_factory(config=..., plugins=...)` builds an `Omni` on a fresh SQLite file
  with the virtual clock; every one built is closed after the test.
- `journey_tester`: `journey_tester(my_journey, config=...)` builds a `JourneyTester` (an `Omni`
  on a virtual clock with the journeys registered); every one built is closed after the test.
- `smtp_server`: a real SMTP server (aiosmtpd) on 127.0.0.1; `.settings` are the `host`/`port`
  keys for a provider, `.messages` what it received (parsed), `.answer_with(fault)` scripts it.
- `tls_files`: a self-signed certificate for 127.0.0.1 (`.cert`, `.key` paths, `.server_context()`).
- `smtp_tls_server`: the SMTP server with STARTTLS required and AUTH user `omni` / `omni-pass`.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from .._clock import VirtualClock
from .._omni import Omni

__all__ = ["TLSFiles"]

SMTP_USER = ("omni", "omni-pass")


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def omni_factory(tmp_path: Path, virtual_clock: VirtualClock) -> Iterator[Callable[..., Omni]]:
    built: list[Omni] = []

    def build(config: Mapping[str, Any] | None = None, **kwargs: Any) -> Omni:
        kwargs.setdefault("clock", virtual_clock)
        omni = Omni(f"sqlite:///{tmp_path}/omni-{len(built)}.db", config, **kwargs)
        built.append(omni)
        return omni

    yield build
    for omni in built:
        omni.close()


@pytest.fixture
def journey_tester() -> Iterator[Callable[..., Any]]:
    from ._journeys import JourneyTester

    built: list[JourneyTester] = []

    def build(*journeys: Any, **kwargs: Any) -> JourneyTester:
        tester = JourneyTester(*journeys, **kwargs)
        built.append(tester)
        return tester

    yield build
    for tester in built:
        tester.close()


@attrs.frozen
class TLSFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    files = TLSFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    from ._conformance_endpoints import SMTPEndpoint

    with SMTPEndpoint() as server:
        yield server


@pytest.fixture
def smtp_tls_server(tls_files: TLSFiles) -> Iterator[Any]:
    from ._conformance_endpoints import SMTPEndpoint

    with SMTPEndpoint(tls=tls_files.server_context(), auth=SMTP_USER) as server:
        yield server
