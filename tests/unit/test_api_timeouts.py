"""Every Kubernetes request has a deadline (10 s unless the cluster's config says otherwise):
a hanging API server fails one request, in words, instead of holding a job for minutes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.aio import client as kube_client

from bot.config import ClusterConfig
from playbooks.kube import KubeApi, KubeError


def test_the_api_request_timeout_is_10_s_unless_the_cluster_config_says_otherwise() -> None:
    assert ClusterConfig(name="prod").api_request_timeout == timedelta(seconds=10)
    changed = ClusterConfig.model_validate({"name": "prod", "api_request_timeout": "3s"})
    assert changed.api_request_timeout == timedelta(seconds=3)


async def test_a_request_the_api_never_answers_fails_after_the_timeout_in_words() -> None:
    api = KubeApi(kube_client.ApiClient(), request_timeout=0.05)

    async def never_answers() -> Any:
        await asyncio.Event().wait()

    with pytest.raises(KubeError, match=r"did not answer within 0.05 s while reading node cp-1"):
        await api.call(never_answers, "reading node cp-1")
    await api.close()


async def test_a_transient_error_is_tried_again_but_a_refused_eviction_is_not() -> None:
    api = KubeApi(kube_client.ApiClient(), request_timeout=1)
    tries: list[str] = []

    async def unavailable_once() -> Any:
        tries.append("try")
        if len(tries) == 1:
            raise KubeError("503", status=503)
        return {"kind": "Node"}

    assert await api.call(unavailable_once, "reading node cp-1") == {"kind": "Node"}
    assert len(tries) == 2

    async def pdb_says_not_now() -> Any:
        tries.append("evict")
        raise KubeError("429", status=429)

    with pytest.raises(KubeError):
        await api.call(pdb_says_not_now, "evicting pod shop/web-1", retry=False)
    assert tries.count("evict") == 1
    await api.close()
