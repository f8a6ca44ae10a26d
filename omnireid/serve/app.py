"""The HTTP face of ``GalleryService``: a FastAPI app (OpenAPI docs at ``/docs``).

``GET /health`` is open (for load balancers); ``/embed``, ``/identify``, ``/stats`` and
``GET /gallery/{id}`` need a read key, ``POST /gallery`` and ``DELETE /gallery/{id}`` a write
key. Every refusal is a 4xx with ``{"detail": "<one line>"}``.

``/identify`` runs on the event loop (``async``): its body is parsed and validated in one step
by pydantic's JSON parser, a search is awaited without a thread of its own (the batcher's one
thread runs it) and the answer is written by pydantic-core's JSON encoder. On two cores the
thread hops, the standard library's JSON and the response model's validation of a sync route
cost about as much CPU as the search. Larger requests (images, more than ``INLINE`` features)
go to a worker thread as before, so that the event loop is never held for long.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from omnireid import __version__
from omnireid.errors import RequestError, ServiceError
from omnireid.serve import schemas
from omnireid.serve.auth import HEADER, ApiKeys
from omnireid.serve.limits import BodyLimit
from omnireid.serve.service import GalleryService
from omnireid.serve.store import check_path_id

Body = TypeVar("Body", bound=BaseModel)
INLINE = 64  # feature queries of a request handled on the event loop (more: a worker thread)


def _body(model: type[Body], raw: bytes) -> Body:
    """A request body parsed and validated as ``model``; 422 (``body.<field>: why``) if not."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))} for err in e.errors()]
        raise RequestValidationError(errors) from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI of a JSON request body that a route reads itself (``openapi_extra``)."""
    schema = model.model_json_schema()
    assert "$defs" not in schema, f"{model.__name__} names other models: add them to components"
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"content": content, "required": True}}


def _one_line(errors: list[dict[str, Any]]) -> str:
    """The first validation error as ``where: what`` (and how many more there are)."""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def _access(keys: ApiKeys) -> Callable[[str], Any]:
    """A FastAPI dependency per scope that refuses a missing (401), unknown (401) or
    read-only key for writing (403)."""
    header = APIKeyHeader(name=HEADER, auto_error=False, description="a read or write key")

    def need(scope: str) -> Any:
        async def check(key: str | None = Security(header)) -> None:  # no thread: a hash
            if not keys.enabled:
                return
            if not key:
                raise RequestError(f"an API key is needed: send it in the {HEADER} header", 401)
            got = keys.scope_of(key)
            if got is None:
                raise RequestError("unknown API key", 401)
            if scope == "write" and got != "write":
                raise RequestError("this API key may read but not change the gallery", 403)

        return Depends(check)

    return need


def create_app(service: GalleryService, keys: ApiKeys) -> FastAPI:
    """The gallery API over ``service``, guarded by ``keys`` (none: open)."""
    app = FastAPI(
        title="omnireid gallery",
        version=__version__,
        description="Enrol people by image or feature; identify them against the gallery.",
    )
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)
    need = _access(keys)
    read, write = [need("read")], [need("write")]

    @app.exception_handler(RequestError)
    async def refused(_: Request, e: RequestError) -> JSONResponse:
        service.count("rejected", 1)
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        service.count("rejected", 1)
        return JSONResponse({"detail": _one_line(list(e.errors()))}, status_code=422)

    @app.exception_handler(ServiceError)
    async def unavailable(_: Request, e: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=503)

    @app.get("/health", response_model=schemas.Health)
    def health() -> dict[str, Any]:
        return {"status": "ok", "entries": len(service.store)}

    @app.get("/stats", dependencies=read)
    def stats() -> dict[str, Any]:
        return service.stats()

    @app.post("/embed", response_model=schemas.EmbedResponse, dependencies=read)
    def embed(body: schemas.EmbedRequest) -> dict[str, Any]:
        feats = service.embed(body.images)
        return {"dim": int(feats.shape[1]), "features": feats.tolist()}

    @app.post("/gallery", status_code=201, response_model=schemas.EnrolResponse, dependencies=write)
    def enrol(body: schemas.EnrolRequest) -> dict[str, Any]:
        """Answered only once every item is stored durably (all or none)."""
        return {"ids": service.enrol([item.model_dump() for item in body.items])}

    @app.get("/gallery/{entry_id}", response_model=schemas.EntryOut, dependencies=read)
    def get_entry(entry_id: str) -> dict[str, Any]:
        return service.get(check_path_id(entry_id))

    @app.delete("/gallery/{entry_id}", dependencies=write)
    def remove(entry_id: str) -> dict[str, Any]:
        service.remove(check_path_id(entry_id))
        return {"id": entry_id, "removed": True}

    @app.post(
        "/identify",
        response_model=schemas.IdentifyResponse,
        dependencies=read,
        openapi_extra=_schema(schemas.IdentifyRequest),
    )
    async def identify(request: Request) -> Response:
        body = _body(schemas.IdentifyRequest, await request.body())
        service.check_k(body.k)
        if body.images is not None or len(body.features or ()) > INLINE:
            queries = await run_in_threadpool(service.queries, body.images, body.features)
        else:
            queries = service.queries(body.images, body.features)
        hits = await service.search(queries, body.k)
        threshold = service.threshold.value if service.threshold else None

        def answer() -> bytes:
            return to_json({"results": service.results(hits), "threshold": threshold})

        content = answer() if len(hits) <= INLINE else await run_in_threadpool(answer)
        return Response(content, media_type="application/json")

    return app
