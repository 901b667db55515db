"""`/kube provision node` words: labels and taints may be given again and again, each checked
as Kubernetes checks it; anything else given twice is still refused."""

from __future__ import annotations

import pytest

from commands import CommandError, NewNodeTaint, ProvisionNodeCommand, parse_command

BASE = "provision node worker-9 --address 10.0.0.19"


def provision(text: str) -> ProvisionNodeCommand:
    command = parse_command(f"{BASE} {text}")
    assert isinstance(command, ProvisionNodeCommand)
    return command


def refusal(text: str) -> str:
    with pytest.raises(CommandError) as refused:
        parse_command(f"{BASE} {text}")
    return str(refused.value)


def test_labels_and_taints_given_again_and_again_are_all_kept() -> None:
    command = provision(
        "--label pool=batch --label=zone=a --taint dedicated=batch:NoSchedule --taint gpu:NoExecute"
    )
    assert command.labels == {"pool": "batch", "zone": "a"}
    assert command.taints == [
        NewNodeTaint(key="dedicated", value="batch", effect="NoSchedule"),
        NewNodeTaint(key="gpu", value=None, effect="NoExecute"),
    ]


def test_a_label_without_a_value_sign_is_refused_with_the_form_to_write() -> None:
    assert "write key=value, e.g. --label pool=batch" in refusal("--label pool")


def test_a_label_the_kubelet_may_not_set_on_its_own_node_is_refused() -> None:
    said = refusal("--label node-role.kubernetes.io/worker=")
    assert "a kubelet may not give its own node (NodeRestriction)" in said


def test_a_taint_without_an_effect_or_a_managed_key_is_refused() -> None:
    assert "write key=value:Effect or key:Effect" in refusal("--taint dedicated=batch")
    assert "never touches node.kubernetes.io/*" in refusal(
        "--taint node.kubernetes.io/x:NoSchedule"
    )


def test_the_role_given_twice_is_still_refused() -> None:
    assert "--role is given twice" in refusal("--role worker --role worker")


def test_a_repeated_option_without_its_value_says_so() -> None:
    assert "--label needs a value" in refusal("--label")
