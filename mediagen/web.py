"""HTTP routes the app serves beside Streamlit's pages: zip downloads of the library."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from . import library, runtime
from .errors import InvalidInput, MediagenError, NotFound

LOCAL_OWNER = "local"


def zip_download(request: Request) -> Response:
    """GET /library/zip?collection=ID or ?jobs=ID,ID,…: the files as one zip, streamed."""
    studio = runtime.studio()
    params = request.query_params
    try:
        collection = params.get("collection")
        if collection is not None and not collection.isdigit():
            raise InvalidInput("collection", f"{collection!r} is not a collection id")
        job_ids = [part for part in params.get("jobs", "").split(",") if part]
        items = library.assets_to_zip(
            studio,
            owner=LOCAL_OWNER,
            collection_id=int(collection) if collection is not None else None,
            job_ids=job_ids,
        )
    except NotFound as exc:
        return PlainTextResponse(str(exc), status_code=404)
    except MediagenError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    if not items:
        return PlainTextResponse("nothing to download: the selection holds no files", status_code=404)
    name = quote(params.get("name") or "mediagen") + ".zip"
    archive = library.zip_stream(studio, items)
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{name}", "Content-Length": str(len(archive))}
    return StreamingResponse(iter(archive), media_type="application/zip", headers=headers)
