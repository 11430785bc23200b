"""A certificate chain is as good as its first certificate to expire: a real chain (root
CA -> intermediate -> leaf, made with ``cryptography``) whose intermediate expires before
the leaf is reported at the intermediate's date, named by its common name, from a
fullchain.pem and from a real TLS server on 127.0.0.1 presenting that chain."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pitwatch.exporters import probes
from pitwatch.exporters.security import SecurityCollector
from support.fixtures import samples, success
from support.servers import HTTPServer

NAME = "pitwatch_security_tls_cert_not_after_timestamp_seconds"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def issue(cn: str, days: float, issuer: tuple | None = None, ca: bool = False):
    """A certificate for ``cn`` valid ``days`` more, signed by ``issuer`` (cert, key) or
    by itself: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_cert, signer_key = issuer or (None, key)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer_cert.subject if signer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(NOW + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(signer_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    """fullchain.pem (leaf, intermediate), the leaf's key, the root, and the dates."""
    folder: Path = tmp_path_factory.mktemp("chain")
    root = issue("pitwatch test root", 3650, ca=True)
    intermediate = issue("pitwatch test intermediate", 12, issuer=root, ca=True)
    leaf = issue("127.0.0.1", 80, issuer=intermediate)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    fullchain = folder / "fullchain.pem"
    fullchain.write_bytes(pem(leaf[0]) + pem(intermediate[0]))
    key = folder / "privkey.pem"
    key.write_bytes(leaf[1].private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    leaf_only = folder / "cert.pem"
    leaf_only.write_bytes(pem(leaf[0]))
    return {"fullchain": fullchain, "key": key, "leaf_only": leaf_only,
            "intermediate_after": intermediate[0].not_valid_after_utc.timestamp(),
            "leaf_after": leaf[0].not_valid_after_utc.timestamp()}


def tls_samples(col: SecurityCollector) -> dict[tuple, float]:
    for check in col.checks():
        check.run_once()
    got = samples(col)
    assert success(got, "security") == 1
    return {labels: v for (name, labels), v in got.items() if name == NAME}


def test_a_fullchain_file_expires_with_its_intermediate(chain):
    assert chain["intermediate_after"] < chain["leaf_after"]
    got = tls_samples(SecurityCollector(certificates=[chain["fullchain"], chain["leaf_only"]],
                                        firewall="off"))
    assert got == {
        (("source", str(chain["fullchain"])), ("subject", "pitwatch test intermediate")):
            chain["intermediate_after"],
        # The same leaf alone: its own date.
        (("source", str(chain["leaf_only"])), ("subject", "127.0.0.1")): chain["leaf_after"],
    }


def test_an_endpoint_presenting_the_chain_expires_with_its_intermediate(chain):
    with HTTPServer(cert=(chain["fullchain"], chain["key"])) as server:
        got = tls_samples(SecurityCollector(tls_endpoints=[server.url], firewall="off"))
    assert got == {(("source", server.url), ("subject", "pitwatch test intermediate")):
                   chain["intermediate_after"]}


def test_an_endpoint_presenting_only_its_leaf_is_measured_by_the_leaf(chain):
    # What was sent is what is judged: a server that leaves the intermediate out.
    with HTTPServer(cert=(chain["leaf_only"], chain["key"])) as server:
        expiry = probes.endpoint_expiry(server.url)
    assert expiry == probes.Expiry(chain["leaf_after"], "127.0.0.1")


def test_a_certificate_without_a_common_name_is_named_by_its_subject(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Trading Desk")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=5))
            .sign(key, hashes.SHA256()))
    path = tmp_path / "no-cn.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert probes.cert_file_expiry(path).subject == "O=Trading Desk"
