"""The Ansible peer of `bench.upgrade`'s minor_ha run: a kubespray-style rolling-upgrade playbook
(upgrade-cluster.yml and its roles beside this file), an inventory made from testbed.json, and
the runner that syntax-checks, runs and times it (peer.py)."""
