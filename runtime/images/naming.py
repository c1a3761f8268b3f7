"""How a container's image is named back to the kubelet, as containerd names it.

The kubelet creates containers with the image *id* (``sha256:…``) in ``image.image`` and the
name the pod spec gave in ``image.user_specified_image``. What it shows (``kubectl get pod
-o yaml``: ``image`` and ``imageID``) comes from ContainerStatus:

shown name
    ``user_specified_image`` when the caller gave one, else the image's first tag, else what
    the caller named. Also the ``io.kubernetes.cri.image-name`` annotation of the OCI spec.
image ref
    A repo digest (``repo@sha256:…``): the one of the shown name's repository, else the
    image's first, else the image id (an image imported without a name has no digest).

Pure functions of the container's request and the image record's names.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime.distribution.reference import parse_reference
from runtime.errors import InvalidArgument

__all__ = ["image_ref", "shown_name"]


def shown_name(*, user_specified: str, requested: str, repo_tags: Sequence[str]) -> str:
    if user_specified:
        return user_specified
    if repo_tags:
        return repo_tags[0]
    return requested


def _repository(name: str) -> str:
    try:
        return parse_reference(name).name
    except InvalidArgument:
        return ""


def image_ref(*, shown: str, repo_digests: Sequence[str], image_id: str) -> str:
    if not repo_digests:
        return image_id
    repo = _repository(shown)
    for digest in repo_digests:
        if repo and _repository(digest) == repo:
            return digest
    return repo_digests[0]
