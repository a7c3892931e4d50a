"""Product-level RPCs: GetProduct, ListProducts, UpdateProduct, DeleteImages.

A product's category, title, labels and description live on each of its images (search
filters need them there: the engine has no joins) and are always written to all of them at
once (CatalogueStore.upsert, set_product), so the copies never disagree.
"""

from __future__ import annotations

import base64
import binascii

import grpc

from lookalike.api.interceptors import InvalidArgument, NotFound
from lookalike.api.validation import (
    MAX_DELETE_IDS,
    check_filter,
    check_product_set,
    check_text,
)
from lookalike.limits import MAX_DESCRIPTION_CHARS, MAX_LABELS, MAX_TITLE_CHARS
from lookalike.store import CatalogueStore
from lookalike.store.catalogue import PRODUCT_FIELDS, Product
from lookalike.v1 import lookalike_pb2 as pb

DEFAULT_PAGE = 50
MAX_PAGE = 1000


def product_message(product: Product) -> pb.Product:
    return pb.Product(product_id=product.product_id, product_set=product.product_set,
                      category=product.category, title=product.title, labels=product.labels,
                      description=product.description, image_count=len(product.images),
                      images=[pb.ProductImage(image_id=i, source=s) for i, s in product.images])


def _token(product_id: str) -> str:
    return base64.urlsafe_b64encode(product_id.encode()).decode()


def _after(token: str) -> str:
    """The last product id of the previous page."""
    try:
        return (base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
                if token else "")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidArgument("page_token is not one ListProducts returned") from None


def _fields(product: pb.Product, paths: list[str]) -> dict:
    """The product fields named by the update mask (all four when it is empty), checked."""
    unknown = sorted(set(paths) - set(PRODUCT_FIELDS))
    if unknown:
        raise InvalidArgument(f"update_mask names {', '.join(unknown)}; products may change "
                              f"{', '.join(PRODUCT_FIELDS)} (nothing else without re-ingesting)")
    check_text("category", product.category)
    check_text("title", product.title, MAX_TITLE_CHARS)
    check_text("description", product.description, MAX_DESCRIPTION_CHARS)
    if len(product.labels) > MAX_LABELS:
        raise InvalidArgument(f"{len(product.labels)} labels; at most {MAX_LABELS}")
    for label in product.labels:
        check_text("a label", label)
    values = {"category": product.category, "title": product.title,
              "labels": list(product.labels), "description": product.description}
    return {name: values[name] for name in (paths or PRODUCT_FIELDS)}


class ProductRpcs:
    """Mixed into LookalikeServicer; uses its `store`."""

    store: CatalogueStore

    def _product(self, product_set: str, product_id: str) -> Product:
        if not product_id:
            raise InvalidArgument("product_id is empty")
        check_text("product_id", product_id, is_id=True)
        found = self.store.products(product_set, [product_id])
        if not found:
            where = f" in product set {product_set!r}" if product_set else ""
            raise NotFound(f"no product {product_id!r}{where}")
        return found[0]

    def GetProduct(self, request: pb.GetProductRequest,
                   context: grpc.ServicerContext) -> pb.Product:
        return product_message(self._product(check_product_set(request.product_set),
                                             request.product_id))

    def ListProducts(self, request: pb.ListProductsRequest,
                     context: grpc.ServicerContext) -> pb.ListProductsResponse:
        product_set = check_product_set(request.product_set)
        size = request.page_size or DEFAULT_PAGE
        if size > MAX_PAGE:
            raise InvalidArgument(f"page_size is {size}; at most {MAX_PAGE}")
        categories, labels = list(request.filter.categories), list(request.filter.labels)
        check_filter(categories, labels)
        ids = sorted(self.store.product_ids(
            product_set, self.store.resolve(product_set, "category", categories),
            self.store.resolve(product_set, "labels", labels)))
        after = _after(request.page_token)
        page = [pid for pid in ids if pid > after][:size]
        last = bool(page) and page[-1] == ids[-1]
        return pb.ListProductsResponse(
            products=[product_message(p) for p in self.store.products(product_set, page)],
            next_page_token="" if last or not page else _token(page[-1]), total=len(ids))

    def UpdateProduct(self, request: pb.UpdateProductRequest,
                      context: grpc.ServicerContext) -> pb.Product:
        product_set = check_product_set(request.product.product_set)
        fields = _fields(request.product, list(request.update_mask.paths))
        self._product(product_set, request.product.product_id)  # NOT_FOUND when it has none
        self.store.set_product(product_set, request.product.product_id, fields)
        return product_message(self._product(product_set, request.product.product_id))

    def DeleteImages(self, request: pb.DeleteImagesRequest,
                     context: grpc.ServicerContext) -> pb.DeleteProductsResponse:
        product_set = check_product_set(request.product_set)
        if not request.product_id:
            raise InvalidArgument("product_id is empty")
        check_text("product_id", request.product_id, is_id=True)
        if not request.image_ids or len(request.image_ids) > MAX_DELETE_IDS:
            raise InvalidArgument(f"{len(request.image_ids)} image_ids; 1 to {MAX_DELETE_IDS:,} "
                                  "per call")
        for image_id in request.image_ids:
            check_text("image_id", image_id, is_id=True)
        return pb.DeleteProductsResponse(deleted=self.store.delete_images(
            request.product_id, list(request.image_ids), product_set))
