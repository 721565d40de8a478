"""HTTP routes the app serves beside Streamlit's pages, on the same port."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .. import server
from ..errors import NotFound
from ..jobs.browse import JobFilters
from ..library import zips
from .links import read_zip_link


def zip_download(request: Request) -> Response:
    """GET /library/zip?t=…: the files of a signed link's selection as one zip, streamed."""
    studio = server.studio()
    wanted = read_zip_link(studio.settings, request.query_params.get("t", ""))
    filters = JobFilters.from_json(wanted["filters"]) if wanted.get("filters") else None
    items = zips.assets_to_zip(
        studio, owner=wanted["owner"], collection_id=wanted["collection"], job_ids=wanted["jobs"], filters=filters
    )
    if not items:
        raise NotFound("nothing to download: the selection holds no files")
    name = quote(zips.download_name(request.query_params.get("name")))
    archive = zips.zip_stream(studio, items)  # refuses, naming them, when files are lost
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{name}", "Content-Length": str(len(archive))}
    return StreamingResponse(iter(archive), media_type="application/zip", headers=headers)


ROUTES: list[BaseRoute] = [Route("/library/zip", zip_download, methods=["GET"])]
