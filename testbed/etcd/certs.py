"""The etcd PKI of a kubeadm cluster, as kubeadm lays it out under /etc/kubernetes/pki/etcd on
every control plane (kubernetes.io/docs/setup/best-practices/certificates/, "All
certificates"): one etcd CA (`ca.crt`/`ca.key`, shared by the members), and per member
`server` (kube-etcd: server and client use, SANs the host name, its IP, localhost,
127.0.0.1), `peer` (kube-etcd-peer: the same) and `healthcheck-client`
(kube-etcd-healthcheck-client: client use), each a `.crt`/`.key` pair of PEM files."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class EtcdPki:
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    peer_cert: Path
    peer_key: Path
    client_cert: Path
    client_key: Path

    def kubeadm_files(self) -> dict[str, Path]:
        """kubeadm's file names under /etc/kubernetes/pki/etcd -> these files."""
        return {path.name: path for path in dataclasses.astuple(self)}


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@dataclass(frozen=True)
class EtcdCa:
    cert: Path
    key: Path


def write_etcd_ca(directory: Path) -> EtcdCa:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("etcd-ca")
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca = EtcdCa(directory / "ca.crt", directory / "ca.key")
    ca.cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, ca.key)
    return ca


def write_member_pki(directory: Path, *, ca: EtcdCa, member: str, address: str) -> EtcdPki:
    """One member's files, named as kubeadm names them, signed by the shared etcd CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    hosts = {address, "127.0.0.1"}
    sans: list[x509.GeneralName] = [x509.DNSName(member), x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(host)) for host in sorted(hosts)]
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    issuer = ca_cert.subject
    server, server_key = _leaf(ca_key, issuer, _name(member), both, sans)
    peer, peer_key = _leaf(ca_key, issuer, _name(member), both, sans)
    client_name = _name("kube-etcd-healthcheck-client")
    client, client_key = _leaf(ca_key, issuer, client_name, [ExtendedKeyUsageOID.CLIENT_AUTH], [])
    pki = EtcdPki(
        ca=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        peer_cert=directory / "peer.crt",
        peer_key=directory / "peer.key",
        client_cert=directory / "healthcheck-client.crt",
        client_key=directory / "healthcheck-client.key",
    )
    pki.ca.write_bytes(ca.cert.read_bytes())
    pki.ca_key.write_bytes(ca.key.read_bytes())
    pki.ca_key.chmod(0o600)
    for certificate, key, cert_path, key_path in (
        (server, server_key, pki.server_cert, pki.server_key),
        (peer, peer_key, pki.peer_cert, pki.peer_key),
        (client, client_key, pki.client_cert, pki.client_key),
    ):
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return pki
