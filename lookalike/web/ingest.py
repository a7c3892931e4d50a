"""What POST /v1/ingest accepts, turned into IngestItems:

- JSON: the SubmitIngestRequest message (`{"items": [{"product_id", "uri" | "image" (base64),
  "category", "title", "labels", ...}]}`);
- multipart with a file `catalogue`: a catalogue CSV read like `lookalike ingest` reads one
  (lookalike.tools.catalogue_csv), its images given as http(s) URLs or paths that the service
  reads under its ingest roots (relative paths: under the first root);
- multipart with files `images` and a field `product_id` (and `category`, `title`, `labels`,
  `description`, `product_set`): the images of one product, sent as bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from google.protobuf import json_format
from starlette.datastructures import FormData, UploadFile

from lookalike.tools.catalogue import CatalogueError
from lookalike.tools.catalogue_csv import read_csv
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.web.errors import bad_request

MAX_FILES = 200


def from_json(body: object) -> list[pb.IngestItem]:
    if not isinstance(body, dict):
        raise bad_request('the body is not a JSON object: {"items": [...]}')
    try:
        return list(json_format.ParseDict(body, pb.SubmitIngestRequest()).items)
    except json_format.ParseError as exc:
        raise bad_request(f"not a SubmitIngestRequest: {exc}") from None


async def from_form(form: FormData, roots: list[Path]) -> tuple[list[pb.IngestItem], list[str]]:
    """The items, and the rows of a CSV that were not sent (with why)."""
    catalogue = form.get("catalogue")
    product_set = str(form.get("product_set") or "")
    if isinstance(catalogue, UploadFile):
        return _from_csv(await catalogue.read(), roots, product_set)
    images = [f for f in form.getlist("images") if isinstance(f, UploadFile)]
    if not images:
        raise bad_request("nothing to ingest: send a CSV as the file field 'catalogue', or image "
                          "files as 'images' with a 'product_id'")
    product_id = str(form.get("product_id") or "")
    if not product_id:
        raise bad_request("product_id is empty: the images need the product they show")
    labels = [p.strip() for p in str(form.get("labels") or "").split(",") if p.strip()]
    details = {name: str(form.get(name) or "") for name in ("category", "title", "description")}
    return [pb.IngestItem(product_id=product_id, image_id=Path(f.filename or "").name,
                          image=await f.read(), labels=labels, product_set=product_set,
                          source=Path(f.filename or "").name, **details)
            for f in images], []


def _from_csv(data: bytes, roots: list[Path],
              product_set: str) -> tuple[list[pb.IngestItem], list[str]]:
    with tempfile.TemporaryDirectory(prefix="lookalike-web-") as folder:
        path = Path(folder) / "catalogue.csv"
        path.write_bytes(data)
        try:
            catalogue = read_csv(path, base=roots[0] if roots else Path(folder) / "no-root",
                                 product_set=product_set)
        except CatalogueError as exc:
            raise bad_request(str(exc)) from None
    # Paths and URLs alike go by reference: the service reads them with its own confinement.
    items = [pb.IngestItem(product_id=e.product_id, image_id=e.image_id, uri=e.uri, source=e.uri,
                           category=e.category, title=e.title, labels=e.labels,
                           product_set=e.product_set, description=e.description)
             for e in catalogue]
    return items, [str(p) for p in catalogue.problems] + catalogue.warnings
