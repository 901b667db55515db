"""A cluster behind a proxy is still reached through it, as kubectl reaches it (HTTPS_PROXY,
NO_PROXY, a kubeconfig's proxy-url first), while the environment is read once per cluster
connection, not in a worker thread for every API request."""

from __future__ import annotations

import base64

import pytest
from kubernetes.aio import client

from playbooks.kube import proxy_from_environment_once


def configuration(host: str, proxy: str | None = None) -> client.Configuration:
    found = client.Configuration(host=host)
    found.proxy = proxy
    return found


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_https_proxy_from_the_environment_is_used_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://ops:s3cret@proxy.corp:3128")
    found = configuration("https://10.0.0.1:6443")
    proxy_from_environment_once(found)
    assert found.proxy == "http://proxy.corp:3128"
    expected = base64.b64encode(b"ops:s3cret").decode()
    assert found.proxy_headers == {"Proxy-Authorization": f"Basic {expected}"}
    assert found.client_session_kwargs == {"trust_env": False}


def test_no_proxy_keeps_the_api_server_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "10.0.0.1,.cluster.local")
    found = configuration("https://10.0.0.1:6443")
    proxy_from_environment_once(found)
    assert found.proxy is None


def test_a_kubeconfig_proxy_url_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    found = configuration("https://10.0.0.1:6443", proxy="http://jump.corp:8080")
    proxy_from_environment_once(found)
    assert found.proxy == "http://jump.corp:8080"


def test_without_a_proxy_nothing_is_proxied() -> None:
    found = configuration("https://10.0.0.1:6443")
    proxy_from_environment_once(found)
    assert found.proxy is None and found.client_session_kwargs == {"trust_env": False}
