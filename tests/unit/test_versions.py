"""The version-skew rules an upgrade is held to, decided without a cluster."""

from __future__ import annotations

import pytest

from playbooks.versions import Version, skew_problems


def v(text: str) -> Version:
    version = Version.parse(text)
    assert version is not None
    return version


def problems(
    kubelet: str, target: str, api_server: str, *, moves_api_server: bool = False
) -> list[str]:
    return skew_problems(
        node="worker-3",
        kubelet=v(kubelet),
        target=v(target),
        api_server=v(api_server),
        moves_api_server=moves_api_server,
    )


def test_versions_parse_with_or_without_v_and_compare_numerically() -> None:
    assert v("v1.31.10") > v("1.31.9")
    assert v("v1.31.2+k3s1") == v("v1.31.2")
    assert str(v("1.32.0")) == "v1.32.0" and v("v1.32.0").package == "1.32.0"
    assert Version.parse("latest") is None and Version.parse("v1.31") is None


def test_a_worker_may_take_the_next_patch_the_api_server_already_runs() -> None:
    assert problems("v1.31.2", "v1.31.3", "v1.31.3") == []


def test_a_worker_may_follow_the_api_server_one_minor_up() -> None:
    assert problems("v1.31.2", "v1.32.0", "v1.32.0") == []


def test_a_worker_kubelet_is_never_newer_than_the_api_server() -> None:
    [problem] = problems("v1.31.2", "v1.31.3", "v1.31.2")
    assert "never be newer than the API server" in problem and "v1.31.2" in problem


def test_two_minors_at_once_are_refused_naming_the_one_minor_rule() -> None:
    found = problems("v1.31.2", "v1.33.0", "v1.33.0")
    assert len(found) == 1
    assert "one minor at a time" in found[0] and "v1.32.x first" in found[0]


def test_a_downgrade_is_refused() -> None:
    [problem] = problems("v1.31.2", "v1.30.9", "v1.31.2")
    assert "does not downgrade" in problem


def test_a_patch_downgrade_is_refused_too() -> None:
    assert any("does not downgrade" in p for p in problems("v1.31.2", "v1.31.1", "v1.31.2"))


def test_a_new_major_is_never_one_step_away() -> None:
    assert any("one minor at a time" in p for p in problems("v1.31.2", "v2.0.0", "v2.0.0"))


def test_the_first_control_plane_may_lead_the_api_server_by_one_minor() -> None:
    assert problems("v1.31.2", "v1.32.0", "v1.31.2", moves_api_server=True) == []


def test_the_first_control_plane_cannot_take_the_api_server_two_minors() -> None:
    found = problems("v1.31.2", "v1.33.0", "v1.31.2", moves_api_server=True)
    assert any("moves it one minor at a time" in p for p in found)


def test_the_first_control_plane_cannot_move_the_api_server_back() -> None:
    found = problems("v1.31.2", "v1.31.3", "v1.31.4", moves_api_server=True)
    assert any("would downgrade it" in p for p in found)


@pytest.mark.parametrize("target", ["v1.31.3", "v1.32.0"])
def test_other_control_planes_wait_for_the_api_server(target: str) -> None:
    found = problems("v1.31.2", target, "v1.31.2", moves_api_server=False)
    assert any("never be newer than the API server" in p for p in found)
