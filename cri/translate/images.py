"""CRI image messages <-> runtime image records and credentials."""

from __future__ import annotations

import json

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.images.store import ImageRecord


def user_fields(user: str) -> tuple[int | None, str]:
    """The CRI ``uid``/``username`` pair for an image config's ``User`` ("name", "1000",
    "1000:1000", "name:group"): a numeric user is a uid, anything else a username."""
    name = user.split(":", 1)[0]
    if not name:
        return None, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def image(record: ImageRecord, *, pinned: bool) -> pb.Image:
    uid, username = user_fields(record.user)
    out = pb.Image(
        id=record.id,
        repo_tags=list(record.repo_tags),
        repo_digests=list(record.repo_digests),
        size=record.size,
        username=username,
        pinned=pinned,
    )
    if uid is not None:
        out.uid.value = uid
    return out


def verbose_info(record: ImageRecord) -> dict[str, str]:
    """ImageStatus verbose info: the image config and where the image lives, as JSON."""
    return {
        "info": json.dumps(
            {
                "id": record.id,
                "manifestDigest": record.manifest_digest,
                "manifestMediaType": record.manifest_media_type,
                "chainID": record.chain_id,
                "imageSpec": record.config,
            },
            sort_keys=True,
        )
    }
