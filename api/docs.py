"""GET /docs: Swagger UI over the OpenAPI document, public (no API key), no CDN.

The page and its assets are served by the app itself: Swagger UI 5 (it reads OpenAPI 3.1) as bundled in
the `swagger-ui-py` package (`swagger_ui/static`; only its files are used, not its framework glue, so
the routes stay `public` to the key middleware and answer with this API's JSON errors). The page has no
inline script or style, so its Content-Security-Policy allows this origin only (Swagger UI renders under
it without a violation in Chromium); "Authorize" takes an API key, "Try it out" sends requests here.
"""

from __future__ import annotations

import html
from importlib.resources import files

import falcon

PREFIX = "/docs"
# The files the page uses, and their media types.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
INIT = "init.js"
INIT_JS = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ScraperSky API</title>
  <link rel="stylesheet" href="{prefix}/swagger-ui.css">
  <link rel="stylesheet" href="{prefix}/index.css">
  <link rel="icon" type="image/png" href="{prefix}/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{prefix}/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec}"></div>
  <script src="{prefix}/swagger-ui-bundle.js"></script>
  <script src="{prefix}/{init}"></script>
</body>
</html>
"""
CSP = ("default-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'none'")


class DocsPage:
    public = True  # no API key needed (api/auth.py)

    def __init__(self, spec_url: str) -> None:
        self.page = PAGE.format(prefix=PREFIX, spec=html.escape(spec_url), init=INIT)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Content-Security-Policy", CSP)
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Cache-Control", "no-cache")
        resp.text = self.page


class DocsAsset:
    public = True

    def __init__(self) -> None:
        self.static = files("swagger_ui") / "static"
        self.cache: dict[str, bytes] = {INIT: INIT_JS.encode()}

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        media = "text/javascript; charset=utf-8" if name == INIT else ASSETS.get(name)
        if media is None:
            raise falcon.HTTPNotFound(description=f"{PREFIX}/{name[:100]} is not a file of the docs page.")
        if name not in self.cache:
            self.cache[name] = (self.static / name).read_bytes()
        resp.content_type = media
        resp.set_header("Cache-Control", "public, max-age=86400")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.data = self.cache[name]


def add_docs(app: falcon.App, spec_url: str) -> None:
    app.add_route(PREFIX, DocsPage(spec_url))
    app.add_route(f"{PREFIX}/{{name}}", DocsAsset())
