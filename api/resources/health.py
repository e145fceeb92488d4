"""GET /health (database and scrapyd) and GET /health/database."""

from __future__ import annotations

import falcon

from api.http import UNAVAILABLE_RETRY_AFTER, json_response
from api.scrapyd_client import ScrapydClient, ScrapydError
from api.store import Store


class HealthResource:
    public = True  # no API key needed (api/auth.py)

    def __init__(self, store: Store, clients: list[ScrapydClient], project: str) -> None:
        self.store = store
        self.clients = clients
        self.project = project

    def _db(self) -> dict:
        try:
            self.store.ping()
            return {"ok": True}
        except Exception as exc:  # any failure means "down"
            return {"ok": False, "error": str(exc).splitlines()[0][:200]}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        db = self._db()
        nodes = []
        for client in self.clients:
            try:
                st = client.daemonstatus()
                nodes.append({"url": client.public_url, "ok": True, "pending": st.get("pending"),
                              "running": st.get("running"), "finished": st.get("finished")})
            except ScrapydError as exc:
                nodes.append({"url": client.public_url, "ok": False, "error": str(exc)})
        scrapyd_ok = any(n["ok"] for n in nodes)
        ok = db["ok"] and scrapyd_ok
        body = {"status": "ok" if ok else "unavailable", "database": db, "scrapyd": {"ok": scrapyd_ok, "nodes": nodes}}
        if not ok:
            down = [why for why, up in (("the database cannot be reached", db["ok"]),
                                        ("no scrapyd node answers", scrapyd_ok)) if not up]
            body.update(title="Service unavailable", description=f"{'; '.join(down).capitalize()}; retry later.")
        respond(resp, body, ok)


class DatabaseHealthResource:
    public = True

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        db = HealthResource._db(self)  # type: ignore[arg-type]
        body = {"status": "ok" if db["ok"] else "unavailable", "database": db}
        if not db["ok"]:
            body.update(title="Database unavailable", description="The database could not be reached; retry later.")
        respond(resp, body, db["ok"])


def respond(resp: falcon.Response, body: dict, ok: bool) -> None:
    """200, or 503 with Retry-After (also `retry_after` in the body)."""
    if not ok:
        body["retry_after"] = UNAVAILABLE_RETRY_AFTER
        resp.set_header("Retry-After", str(UNAVAILABLE_RETRY_AFTER))
    json_response(resp, body, falcon.HTTP_200 if ok else falcon.HTTP_503)
