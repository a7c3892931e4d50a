from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verify(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFY_DEFAULT: _ClassVar[Verify]
    VERIFY_AUTO: _ClassVar[Verify]
    VERIFY_OFF: _ClassVar[Verify]
    VERIFY_ON: _ClassVar[Verify]
VERIFY_DEFAULT: Verify
VERIFY_AUTO: Verify
VERIFY_OFF: Verify
VERIFY_ON: Verify

class Filter(_message.Message):
    __slots__ = ("categories", "labels")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("image", "top_k", "filter", "min_score", "verify", "per_object", "product_set", "text")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    PER_OBJECT_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    top_k: int
    filter: Filter
    min_score: float
    verify: Verify
    per_object: bool
    product_set: str
    text: str
    def __init__(self, image: _Optional[bytes] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., min_score: _Optional[float] = ..., verify: _Optional[_Union[Verify, str]] = ..., per_object: _Optional[bool] = ..., product_set: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("product_id", "score", "image_id", "category", "title", "labels", "source", "inliers", "verified", "polygon", "stage1_rank", "description")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INLIERS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    POLYGON_FIELD_NUMBER: _ClassVar[int]
    STAGE1_RANK_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    score: float
    image_id: str
    category: str
    title: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    source: str
    inliers: int
    verified: bool
    polygon: _containers.RepeatedCompositeFieldContainer[Point]
    stage1_rank: int
    description: str
    def __init__(self, product_id: _Optional[str] = ..., score: _Optional[float] = ..., image_id: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., inliers: _Optional[int] = ..., verified: _Optional[bool] = ..., polygon: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., stage1_rank: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("matches", "model", "server_ms", "verify", "objects")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    model: str
    server_ms: float
    verify: str
    objects: _containers.RepeatedCompositeFieldContainer[DetectedObject]
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., model: _Optional[str] = ..., server_ms: _Optional[float] = ..., verify: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[DetectedObject, _Mapping]]] = ...) -> None: ...

class DetectedObject(_message.Message):
    __slots__ = ("bounding_poly", "score", "matches")
    BOUNDING_POLY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    bounding_poly: _containers.RepeatedCompositeFieldContainer[Point]
    score: float
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, bounding_poly: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., score: _Optional[float] = ..., matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class IngestItem(_message.Message):
    __slots__ = ("product_id", "image_id", "image", "uri", "category", "title", "labels", "source", "product_set", "description")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    image_id: str
    image: bytes
    uri: str
    category: str
    title: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    source: str
    product_set: str
    description: str
    def __init__(self, product_id: _Optional[str] = ..., image_id: _Optional[str] = ..., image: _Optional[bytes] = ..., uri: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., product_set: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class SubmitIngestRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[IngestItem]
    def __init__(self, items: _Optional[_Iterable[_Union[IngestItem, _Mapping]]] = ...) -> None: ...

class SubmitIngestResponse(_message.Message):
    __slots__ = ("job_id", "total")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    total: int
    def __init__(self, job_id: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ItemFailure(_message.Message):
    __slots__ = ("index", "product_id", "image_id", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    product_id: str
    image_id: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., product_id: _Optional[str] = ..., image_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "state", "total", "done", "failed", "failures")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Job.State]
        QUEUED: _ClassVar[Job.State]
        RUNNING: _ClassVar[Job.State]
        DONE: _ClassVar[Job.State]
    STATE_UNSPECIFIED: Job.State
    QUEUED: Job.State
    RUNNING: Job.State
    DONE: Job.State
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: Job.State
    total: int
    done: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[ItemFailure]
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[Job.State, str]] = ..., total: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[ItemFailure, _Mapping]]] = ...) -> None: ...

class DeleteProductsRequest(_message.Message):
    __slots__ = ("product_ids", "product_set")
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    product_set: str
    def __init__(self, product_ids: _Optional[_Iterable[str]] = ..., product_set: _Optional[str] = ...) -> None: ...

class DeleteProductsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("product_set",)
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    product_set: str
    def __init__(self, product_set: _Optional[str] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("points", "products", "model_name", "model_version", "vector_size", "collection", "product_set", "categories")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    points: int
    products: int
    model_name: str
    model_version: str
    vector_size: int
    collection: str
    product_set: str
    categories: _containers.RepeatedCompositeFieldContainer[CategoryCount]
    def __init__(self, points: _Optional[int] = ..., products: _Optional[int] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., vector_size: _Optional[int] = ..., collection: _Optional[str] = ..., product_set: _Optional[str] = ..., categories: _Optional[_Iterable[_Union[CategoryCount, _Mapping]]] = ...) -> None: ...

class CategoryCount(_message.Message):
    __slots__ = ("category", "products")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    category: str
    products: int
    def __init__(self, category: _Optional[str] = ..., products: _Optional[int] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("product_id", "product_set", "category", "title", "labels", "description", "image_count", "images")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    product_set: str
    category: str
    title: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    description: str
    image_count: int
    images: _containers.RepeatedCompositeFieldContainer[ProductImage]
    def __init__(self, product_id: _Optional[str] = ..., product_set: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., image_count: _Optional[int] = ..., images: _Optional[_Iterable[_Union[ProductImage, _Mapping]]] = ...) -> None: ...

class ProductImage(_message.Message):
    __slots__ = ("image_id", "source")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    source: str
    def __init__(self, image_id: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class GetProductRequest(_message.Message):
    __slots__ = ("product_id", "product_set")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    product_set: str
    def __init__(self, product_id: _Optional[str] = ..., product_set: _Optional[str] = ...) -> None: ...

class ListProductsRequest(_message.Message):
    __slots__ = ("product_set", "filter", "page_size", "page_token")
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    product_set: str
    filter: Filter
    page_size: int
    page_token: str
    def __init__(self, product_set: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProductsResponse(_message.Message):
    __slots__ = ("products", "next_page_token", "total")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[Product]
    next_page_token: str
    total: int
    def __init__(self, products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class UpdateProductRequest(_message.Message):
    __slots__ = ("product", "update_mask")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    product: Product
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteImagesRequest(_message.Message):
    __slots__ = ("product_id", "image_ids", "product_set")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    image_ids: _containers.RepeatedScalarFieldContainer[str]
    product_set: str
    def __init__(self, product_id: _Optional[str] = ..., image_ids: _Optional[_Iterable[str]] = ..., product_set: _Optional[str] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("positive_product_ids", "negative_product_ids", "filter", "top_k", "product_set", "diversity")
    POSITIVE_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    positive_product_ids: _containers.RepeatedScalarFieldContainer[str]
    negative_product_ids: _containers.RepeatedScalarFieldContainer[str]
    filter: Filter
    top_k: int
    product_set: str
    diversity: float
    def __init__(self, positive_product_ids: _Optional[_Iterable[str]] = ..., negative_product_ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., top_k: _Optional[int] = ..., product_set: _Optional[str] = ..., diversity: _Optional[float] = ...) -> None: ...

class FindDuplicatesRequest(_message.Message):
    __slots__ = ("threshold", "product_set", "within_products")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    WITHIN_PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    product_set: str
    within_products: bool
    def __init__(self, threshold: _Optional[float] = ..., product_set: _Optional[str] = ..., within_products: _Optional[bool] = ...) -> None: ...

class DuplicateImage(_message.Message):
    __slots__ = ("product_id", "image_id", "source", "title", "score")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    image_id: str
    source: str
    title: str
    score: float
    def __init__(self, product_id: _Optional[str] = ..., image_id: _Optional[str] = ..., source: _Optional[str] = ..., title: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[DuplicateImage]
    def __init__(self, images: _Optional[_Iterable[_Union[DuplicateImage, _Mapping]]] = ...) -> None: ...

class FindDuplicatesResponse(_message.Message):
    __slots__ = ("groups", "threshold", "images")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[DuplicateGroup]
    threshold: float
    images: int
    def __init__(self, groups: _Optional[_Iterable[_Union[DuplicateGroup, _Mapping]]] = ..., threshold: _Optional[float] = ..., images: _Optional[int] = ...) -> None: ...

class DetectCopyRequest(_message.Message):
    __slots__ = ("image", "product_set")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_SET_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    product_set: str
    def __init__(self, image: _Optional[bytes] = ..., product_set: _Optional[str] = ...) -> None: ...

class DetectCopyResponse(_message.Message):
    __slots__ = ("is_copy", "confidence", "original", "inliers", "coverage", "model", "server_ms")
    IS_COPY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    INLIERS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    is_copy: bool
    confidence: float
    original: Match
    inliers: int
    coverage: float
    model: str
    server_ms: float
    def __init__(self, is_copy: _Optional[bool] = ..., confidence: _Optional[float] = ..., original: _Optional[_Union[Match, _Mapping]] = ..., inliers: _Optional[int] = ..., coverage: _Optional[float] = ..., model: _Optional[str] = ..., server_ms: _Optional[float] = ...) -> None: ...
