"""What a request may hold: caps on ids, texts, lists and references (lookalike.limits),
with the reason."""

from __future__ import annotations

import hashlib
import re

from lookalike.api.interceptors import InvalidArgument
from lookalike.limits import (
    CONTROL,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_LABELS,
    MAX_TITLE_CHARS,
    PRODUCT_SET,
)
from lookalike.pipeline.queue import ItemMessage
from lookalike.pipeline.sources import FetchError, check_uri, redact
from lookalike.v1 import lookalike_pb2 as pb

MAX_FILTER_VALUES = 64
MAX_DELETE_IDS = 1000
_JOB_ID = re.compile(r"[0-9a-f]{32}")


def check_text(name: str, value: str, limit: int = MAX_ID_CHARS, is_id: bool = False) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{name} is {len(value):,} characters; at most {limit:,}")
    if is_id and CONTROL.search(value):
        raise InvalidArgument(f"{name} contains control characters")


def check_filter(categories: list[str], labels: list[str]) -> None:
    for name, values in (("filter.categories", categories), ("filter.labels", labels)):
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidArgument(f"{name} has {len(values):,} values; at most {MAX_FILTER_VALUES}")
        for value in values:
            check_text(f"a value of {name}", value)


def check_product_ids(product_ids: list[str]) -> None:
    if not product_ids:
        raise InvalidArgument("no product_ids given")
    if len(product_ids) > MAX_DELETE_IDS:
        raise InvalidArgument(f"{len(product_ids):,} product_ids; at most {MAX_DELETE_IDS:,} "
                              "per call")
    for product_id in product_ids:
        check_text("product_id", product_id, is_id=True)


def check_product_set(name: str) -> str:
    """The set's name ("" is the default set)."""
    if name and not PRODUCT_SET.fullmatch(name):
        raise InvalidArgument(f"product_set {name[:80]!r} is not a set name: 1-64 letters, "
                              "digits, '_', '.' or '-', starting with a letter or digit")
    return name


def check_job_id(job_id: str) -> None:
    if not _JOB_ID.fullmatch(job_id):
        raise InvalidArgument("job_id must be the 32 hexadecimal characters SubmitIngest "
                              f"returned; got {job_id[:40]!r}")


def item_message(index: int, item: pb.IngestItem) -> ItemMessage | str:
    """The queue message for one item, or why the item is refused outright."""
    if not item.product_id:
        return "product_id is empty"
    try:
        check_text("product_id", item.product_id, is_id=True)
        check_text("image_id", item.image_id, is_id=True)
        check_text("category", item.category)
        check_text("title", item.title, MAX_TITLE_CHARS)
        check_text("source", item.source, MAX_TITLE_CHARS)
        check_text("description", item.description, MAX_DESCRIPTION_CHARS)
        check_product_set(item.product_set)
        if len(item.labels) > MAX_LABELS:
            raise InvalidArgument(f"{len(item.labels)} labels; at most {MAX_LABELS}")
        for label in item.labels:
            check_text("a label", label)
    except InvalidArgument as exc:
        return str(exc)
    message = ItemMessage(index=index, product_id=item.product_id, category=item.category,
                          title=item.title, labels=list(item.labels))
    if item.product_set:
        message["product_set"] = item.product_set
    if item.description:
        message["description"] = item.description
    content = item.WhichOneof("content")
    if content == "image":
        message["image"] = item.image
        message["image_id"] = item.image_id or hashlib.sha1(item.image).hexdigest()[:16]
        message["source"] = item.source or "upload"
    elif content == "uri":
        try:
            check_uri(item.uri)
        except FetchError as exc:
            return str(exc)
        message["uri"] = item.uri
        # A default image id from the URI, with its credentials left out (ids are shown).
        message["image_id"] = item.image_id or redact(item.uri)[:MAX_ID_CHARS]
        message["source"] = item.source or redact(item.uri)
    else:
        return "neither image bytes nor uri given"
    return message
