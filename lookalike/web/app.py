"""The ASGI app: JSON endpoints mirroring the RPCs, /healthz, the page and its assets.

Each endpoint is one call of `lookalike.client.AsyncClient` with the caller's x-api-key, so
the answers and the errors are the service's own (errors.py maps the status codes)."""

from __future__ import annotations

import copy
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Body, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from google.protobuf import json_format

from lookalike.client import AsyncClient, update_request
from lookalike.config import Settings
from lookalike.v1 import lookalike_pb2 as pb
from lookalike.web import errors, ingest, thumbs
from lookalike.web.errors import bad_request
from lookalike.web.forms import read_fields
from lookalike.web.limits import BodyLimit, body_limits

STATIC = Path(__file__).parent / "static"
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
IMAGE_BODY = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}
PARAMS = ("top_k, categories, labels (repeated or comma-separated), min_score, verify "
          "(auto|off|on), per_object, text, product_set: query or form fields.")


def as_dict(message) -> dict:
    """The proto3 JSON mapping with the .proto's field names (64-bit integers are strings)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def create_app(settings: Settings, grpc_target: str, client_options: dict | None = None) -> FastAPI:
    options = client_options or {"tls": settings.tls, "tls_ca": settings.tls_ca}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.client = AsyncClient(grpc_target, **options)
        try:
            yield
        finally:
            await app.state.client.close()

    app = FastAPI(title="lookalike", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # they load scripts from a CDN
                  description="HTTP/JSON beside gRPC: each endpoint is one lookalike.v1 call "
                  "with your x-api-key header; errors are {error: {code, message}}.")
    errors.install(app)
    app.add_middleware(BodyLimit, limits=body_limits(settings))
    if origins := settings.http_cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_headers=["x-api-key",
                           "content-type"], allow_methods=["GET", "POST", "PATCH", "DELETE"])

    @app.middleware("http")
    async def harden(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        return response

    def calls(request: Request) -> AsyncClient:
        """The shared channel, calling with this request's API key."""
        view = copy.copy(request.app.state.client)
        key = request.headers.get("x-api-key", "")
        view.metadata = (("x-api-key", key),) if key else ()
        return view

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request):
        """200 when the gateway is up and the gRPC service answers SERVING."""
        if await request.app.state.client.healthy():
            return {"status": "SERVING", "grpc": grpc_target}
        return JSONResponse({"status": "NOT_SERVING", "grpc": grpc_target}, status_code=503)

    @app.post("/v1/search", tags=["search"], openapi_extra=IMAGE_BODY, description=PARAMS)
    async def search(request: Request):
        f = await read_fields(request)
        verify = f.text("verify").lower()
        if verify not in ("", "auto", "off", "on"):
            raise bad_request(f"verify is {verify[:20]!r}; one of auto, off, on")
        return as_dict(await calls(request).search(
            f.image, f.integer("top_k"), f.words("categories"), f.words("labels"),
            f.number("min_score"), verify, f.flag("per_object"), f.text("product_set"),
            f.text("text")))

    @app.post("/v1/copies", tags=["search"], openapi_extra=IMAGE_BODY)
    async def detect_copy(request: Request):
        """DetectCopy: is the photo a copy of a catalogue image? (field product_set)"""
        f = await read_fields(request)
        return as_dict(await calls(request).detect_copy(f.image, f.text("product_set")))

    @app.post("/v1/recommend", tags=["search"])
    async def recommend(request: Request, body: dict = Body(..., examples=[
            {"positive_product_ids": ["sku-1"], "top_k": 5}])):
        """The RecommendRequest message as JSON."""
        try:
            message = json_format.ParseDict(body, pb.RecommendRequest())
        except json_format.ParseError as exc:
            raise bad_request(f"not a RecommendRequest: {exc}") from None
        return as_dict(await calls(request)._call("Recommend", message))

    @app.get("/v1/duplicates", tags=["search"])
    async def duplicates(request: Request, threshold: float = 0.0, product_set: str = "",
                         within_products: bool = False):
        return as_dict(await calls(request).duplicates(threshold, product_set, within_products))

    @app.post("/v1/ingest", tags=["ingest"])
    async def submit(request: Request):
        """JSON (a SubmitIngestRequest), or multipart: a CSV as `catalogue`, or image files as
        `images` with `product_id`. Answers the job id; rows of a CSV not sent are `problems`."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        problems: list[str] = []
        if kind == "multipart/form-data":
            form = await request.form(max_files=ingest.MAX_FILES, max_fields=50)
            items, problems = await ingest.from_form(form, settings.ingest_root_list)
        else:
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("the body is not JSON: send a SubmitIngestRequest or a "
                                  "multipart form") from None
            items = ingest.from_json(body)
        if not items:
            raise bad_request("nothing to ingest" + (f": {problems[0]}" if problems else ""))
        job_id = await calls(request).submit(items)
        return {"job_id": job_id, "total": len(items), "problems": problems}

    @app.get("/v1/jobs/{job_id}", tags=["ingest"])
    async def job(request: Request, job_id: str):
        return as_dict(await calls(request).job(job_id))

    @app.get("/v1/stats", tags=["catalogue"])
    async def stats(request: Request, product_set: str = ""):
        return as_dict(await calls(request).stats(product_set))

    @app.get("/v1/products", tags=["catalogue"])
    async def products(request: Request, product_set: str = "", page_size: int = 0,
                       page_token: str = ""):
        """One page; filter with categories / labels (repeated or comma-separated)."""
        f = await read_fields(request)
        return as_dict(await calls(request).list_products(
            product_set, f.words("categories"), f.words("labels"), page_size, page_token))

    @app.get("/v1/products/{product_id}", tags=["catalogue"])
    async def product(request: Request, product_id: str, product_set: str = ""):
        return as_dict(await calls(request).product(product_id, product_set))

    @app.patch("/v1/products/{product_id}", tags=["catalogue"])
    async def update(request: Request, product_id: str, product_set: str = "",
                     body: dict = Body(..., examples=[{"title": "New title"}])):
        """Only the fields given (category, title, labels, description) change."""
        fields = {k: body[k] for k in ("category", "title", "labels", "description") if k in body}
        if unknown := sorted(set(body) - set(fields)):
            raise bad_request(f"cannot update {', '.join(unknown)}: only category, title, "
                              "labels, description")
        try:
            message = update_request(product_id, product_set, **fields)
        except (ValueError, TypeError) as exc:
            raise bad_request(str(exc)) from None
        return as_dict(await calls(request)._call("UpdateProduct", message))

    @app.delete("/v1/products/{product_id}", tags=["catalogue"])
    async def delete(request: Request, product_id: str, product_set: str = ""):
        return {"deleted": await calls(request).delete([product_id], product_set)}

    @app.get("/v1/thumbnails/{product_set}/{product_id}/{image_id}", tags=["catalogue"])
    async def thumbnail(request: Request, product_set: str, product_id: str, image_id: str):
        """A catalogue image, at most 320 px a side; product_set "-" is the default set."""
        return await thumbs.thumbnail(calls(request), settings, product_set, product_id, image_id)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
