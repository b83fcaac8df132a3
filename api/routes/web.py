"""The web UI: static files under api/web/ (no build step), the service worker and printable QR labels.

Every page carries a strict Content-Security-Policy: scripts, styles, images and connections from this
origin only, no inline script, Trusted Types for script sinks. The QR labels encode the URL of the app's
fault-report page for one piece of equipment, so a phone camera opens the report form.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import segno
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.context import REQUEST_SCOPE
from api.deps import SESSION_COOKIE, Ctx
from maintenance.errors import NotFound
from maintenance.scope import ORGANISATION
from maintenance.vocab import TokenKind
from pumpwatch.site import EquipmentBase, Room

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types pumpwatch",
])
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
    ".png": "image/png",
}
NO_CACHE = "no-cache"  # revalidate every time: the service worker keeps the offline copy


def page_headers(**extra: str) -> dict[str, str]:
    """The headers every UI response carries."""
    return {"Content-Security-Policy": CSP, "Cache-Control": NO_CACHE, **extra}


# The API documentation's assets (about 2 MB) are fetched by whoever opens /docs, not kept offline on
# every phone that uses the app.
NOT_PRECACHED = ("vendor/swagger-ui/",)
DOCS_CSP = "; ".join([
    # Swagger UI renders descriptions through React's innerHTML (sanitised by DOMPurify), so this page
    # cannot require Trusted Types; everything else is as strict as the app: files of this origin only.
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def web_files() -> list[str]:
    """The UI's files as `/static/...` URLs, sorted (what the service worker caches for offline use)."""
    found = (p.relative_to(WEB_DIR).as_posix() for p in WEB_DIR.rglob("*")
             if p.is_file() and p.suffix in CONTENT_TYPES and p.name not in ("index.html", "sw.js"))
    return sorted("/static/" + name for name in found if not name.startswith(NOT_PRECACHED))


def web_version() -> str:
    """A hash of every UI file: a new version installs a new service worker and a fresh offline copy."""
    digest = hashlib.sha256()
    for path in sorted(p for p in WEB_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(WEB_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@router.api_route("/", methods=["GET", "HEAD"])
def index() -> Response:
    """The single-page app."""
    return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"), headers=page_headers())


@router.get("/docs")
def api_docs() -> Response:
    """The API's OpenAPI documentation (Swagger UI served from this origin: it works offline)."""
    page = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PumpWatch API</title>
<link rel="icon" href="/static/icons/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="/static/docs.css">
</head>
<body>
<nav class="docs-top" aria-label="PumpWatch"><a href="/">← 泵房监控 PumpWatch</a></nav>
<main id="swagger-ui"></main>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>"""
    return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": NO_CACHE})


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker, at the root so that it controls the whole app."""
    text = (WEB_DIR / "sw.js").read_text(encoding="utf-8")
    text = text.replace("__VERSION__", web_version()).replace("__ASSETS__", json.dumps(web_files()))
    return Response(text, media_type=CONTENT_TYPES[".js"],
                    headers=page_headers(**{"Service-Worker-Allowed": "/"}))


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    """A file of the UI (only the known types, only under api/web/)."""
    target = (WEB_DIR / path).resolve()
    if (not target.is_relative_to(WEB_DIR) or not target.is_file()
            or target.suffix not in CONTENT_TYPES):
        raise NotFound("file", path)
    return FileResponse(target, media_type=CONTENT_TYPES[target.suffix], headers=page_headers())


def _signed_in(request: Request, ctx: Ctx) -> bool:
    """Whether the request has a live session; if so, the request's scope is its user's."""
    session = request.cookies.get(SESSION_COOKIE)
    user = ctx.auth.resolve_token(str(session), TokenKind.SESSION) if session else None
    if user is None:
        return False
    REQUEST_SCOPE.set(ORGANISATION if user.estates is None else ctx.auth.scope(user))
    return True


def _equipment(ctx: Ctx, estate: str | None) -> list[tuple[Room, EquipmentBase]]:
    """The equipment of an estate's rooms (`estate`: needed when the deployment has several)."""
    return [(room, item) for room in ctx.estate_site(estate).rooms for item in room.equipment]


def report_url(request: Request, equipment_id: str) -> str:
    """The URL a label's QR code carries: the app's fault-report page for the equipment."""
    return f"{str(request.base_url).rstrip('/')}/#/report/{quote(equipment_id, safe='')}"


def qr_svg(url: str) -> str:
    """The QR code of `url` as inline SVG (error correction M: survives a scuffed label)."""
    return segno.make(url, error="m", micro=False).svg_inline(scale=5, border=4, dark="#000", light="#fff",
                                                              svgclass="qr")


def _label(request: Request, room: Room, item: EquipmentBase, site_name: str) -> str:
    name = item.name.model_dump() if item.name else {"zh": item.id, "en": item.id}
    url = report_url(request, item.id)
    e = html.escape
    return f"""<article class="label" data-equipment="{e(item.id)}">
  <p class="label-site">{e(site_name)} · {e(room.name.zh)} / {e(room.name.en)}</p>
  <h2 class="label-name"><span lang="zh-CN">{e(name["zh"])}</span> <span lang="en">{e(name["en"])}</span></h2>
  <figure class="label-qr" role="img" aria-label="QR: {e(url)}">{qr_svg(url)}</figure>
  <p class="label-id">{e(item.id)}</p>
  <p class="label-hint"><span lang="zh-CN">扫码报修</span> · <span lang="en">Scan to report a fault</span></p>
  <p class="label-url">{e(url)}</p>
</article>"""


def _label_page(title: str, labels: list[str]) -> HTMLResponse:
    body = "\n".join(labels)
    page = f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="/static/icons/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
<script type="module" src="/static/label.js"></script>
</head>
<body class="label-page">
<nav class="label-tools" aria-label="Label tools">
  <a href="/#/labels">← 返回 Back</a>
  <button type="button" id="print">打印 Print</button>
</nav>
<main class="labels">
{body}
</main>
</body>
</html>"""
    return HTMLResponse(page, headers=page_headers())


def _login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/?next={quote(next_path, safe='')}#/login", status_code=303,
                            headers=page_headers())


@router.get("/label/{equipment_id}")
def label(equipment_id: str, request: Request, ctx: Ctx,
          estate: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """A printable QR label for one piece of equipment (signed-in users)."""
    if not _signed_in(request, ctx):
        return _login_redirect(f"/label/{equipment_id}")
    name = ctx.estate_site(estate).site.name.zh
    for room, item in _equipment(ctx, estate):
        if item.id == equipment_id:
            return _label_page(f"{item.id} · PumpWatch", [_label(request, room, item, name)])
    raise NotFound("equipment", equipment_id)


@router.get("/labels")
def labels(request: Request, ctx: Ctx, room: Annotated[str | None, Query(max_length=100)] = None,
           estate: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """Printable QR labels for every piece of equipment of an estate (of one room, with `room`)."""
    if not _signed_in(request, ctx):
        return _login_redirect("/labels" + (f"?room={quote(room, safe='')}" if room else ""))
    chosen = [(r, item) for r, item in _equipment(ctx, estate) if room is None or r.id == room]
    if not chosen:
        raise NotFound("room", room or "")
    name = ctx.estate_site(estate).site.name.zh
    return _label_page("QR labels · PumpWatch", [_label(request, r, item, name) for r, item in chosen])
