"""The version-skew rules an upgrade is held to, decided without a cluster."""

from __future__ import annotations

import pytest

from playbooks.versions import Skew, Version, skew_problems


def v(text: str) -> Version:
    version = Version.parse(text)
    assert version is not None
    return version


def problems(
    kubelet: str,
    target: str,
    api_servers: str | dict[str, str],
    *,
    procedure: str = "worker",
    oldest_kubelet: tuple[str, str] | None = None,
) -> list[str]:
    servers = {"cp-1": api_servers} if isinstance(api_servers, str) else api_servers
    slow = None if oldest_kubelet is None else (oldest_kubelet[0], v(oldest_kubelet[1]))
    return skew_problems(
        node="worker-3",
        kubelet=v(kubelet),
        target=v(target),
        skew=Skew({name: v(text) for name, text in servers.items()}, slow),
        procedure=procedure,
    )


def test_versions_parse_with_or_without_v_and_compare_numerically() -> None:
    assert v("v1.31.10") > v("1.31.9")
    assert v("v1.31.2+k3s1") == v("v1.31.2")
    assert str(v("1.32.0")) == "v1.32.0" and v("v1.32.0").package == "1.32.0"
    assert Version.parse("latest") is None and Version.parse("v1.31") is None


def test_a_worker_may_take_a_newer_patch_of_the_api_servers_minor() -> None:
    assert problems("v1.31.2", "v1.31.3", "v1.31.2") == []


def test_a_worker_may_follow_the_api_servers_one_minor_up() -> None:
    assert problems("v1.31.2", "v1.32.0", {"cp-1": "v1.32.0", "cp-2": "v1.32.0"}) == []


def test_a_worker_kubelet_is_never_a_newer_minor_than_the_oldest_api_server() -> None:
    [problem] = problems("v1.31.2", "v1.32.0", {"cp-1": "v1.32.0", "cp-2": "v1.31.2"})
    assert "never be a newer minor than the oldest API server" in problem
    assert "cp-2's is at v1.31.2" in problem


def test_two_minors_at_once_are_refused_naming_the_one_minor_rule() -> None:
    found = problems("v1.31.2", "v1.33.0", "v1.33.0")
    assert len(found) == 1
    assert "one minor at a time" in found[0] and "v1.32.x first" in found[0]


def test_two_minors_past_the_api_servers_break_both_rules_in_words() -> None:
    found = problems("v1.31.2", "v1.33.0", "v1.31.2")
    assert any("one minor at a time" in p for p in found)
    assert any("never be a newer minor than the oldest API server" in p for p in found)


def test_a_downgrade_is_refused() -> None:
    [problem] = problems("v1.31.2", "v1.30.9", "v1.31.2")
    assert "does not downgrade" in problem


def test_a_patch_downgrade_is_refused_too() -> None:
    assert any("does not downgrade" in p for p in problems("v1.31.2", "v1.31.1", "v1.31.2"))


def test_a_new_major_is_never_one_step_away() -> None:
    assert any("one minor at a time" in p for p in problems("v1.31.2", "v2.0.0", "v2.0.0"))


def test_the_first_control_plane_may_lead_the_api_servers_by_one_minor() -> None:
    assert problems("v1.31.2", "v1.32.0", "v1.31.2", procedure="apply") == []


def test_the_first_control_plane_cannot_take_the_api_server_two_minors() -> None:
    found = problems("v1.31.2", "v1.33.0", "v1.31.2", procedure="apply")
    assert any("one minor at a time" in p and "out of reach" in p for p in found)


def test_the_first_control_plane_cannot_move_the_api_server_back() -> None:
    found = problems("v1.31.2", "v1.31.3", "v1.31.4", procedure="apply")
    assert any("would downgrade it" in p for p in found)


def test_ha_api_servers_stay_within_one_minor_of_each_other() -> None:
    servers = {"cp-1": "v1.32.0", "cp-2": "v1.32.0", "cp-3": "v1.31.2"}
    found = problems("v1.32.0", "v1.33.0", servers, procedure="apply")
    assert any("cp-3's API server is at v1.31.2" in p for p in found)


def test_the_api_servers_never_leave_a_kubelet_more_than_three_minors_behind() -> None:
    found = problems(
        "v1.31.2", "v1.32.0", "v1.31.2", procedure="apply", oldest_kubelet=("old-1", "v1.28.9")
    )
    assert any("at most three minors older" in p and "old-1" in p for p in found)
    fine = problems(
        "v1.31.2", "v1.32.0", "v1.31.2", procedure="apply", oldest_kubelet=("old-1", "v1.29.0")
    )
    assert fine == []


def test_other_control_planes_follow_the_first_even_past_older_api_servers() -> None:
    servers = {"cp-1": "v1.32.0", "cp-2": "v1.31.2", "cp-3": "v1.31.2"}
    assert problems("v1.31.2", "v1.32.0", servers, procedure="node") == []


@pytest.mark.parametrize("target", ["v1.31.3", "v1.32.0"])
def test_other_control_planes_wait_for_the_first(target: str) -> None:
    found = problems("v1.31.2", target, "v1.31.2", procedure="node")
    assert any("upgrade the first control plane" in p for p in found)
