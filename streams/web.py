"""The worker's HTTP API (CONTRACTS.md), served by aiohttp inside the Faust worker."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import mode
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from features.samples import to_us
from features.store import FeatureStore
from streams.metrics import Metrics

_DASHBOARD = Path(__file__).parent / "static" / "dashboard.html"


def build_api(
    store: FeatureStore,
    metrics: Metrics,
    health: Callable[[], Awaitable[dict[str, bool]]],
    api_token: str | None,
) -> web.Application:
    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if api_token and request.path != "/health":
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_token}".encode()):
                return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    async def get_health(_: web.Request) -> web.Response:
        checks = await health()
        ok = all(checks.values())
        return web.json_response(
            {"status": "ok" if ok else "unavailable", **({} if ok else {"checks": checks})},
            status=200 if ok else 503,
        )

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def get_patients(_: web.Request) -> web.Response:
        return web.json_response(await store.latest_risks())

    async def get_patient(request: web.Request) -> web.Response:
        found = await store.patient(request.match_info["patient_id"])
        if found is None:
            return web.json_response({"error": "unknown patient"}, status=404)
        return web.json_response(found)

    async def get_alerts(request: web.Request) -> web.Response:
        since = request.query.get("since")
        try:
            # an unencoded "+01:00" arrives as " 01:00"
            at = datetime.fromisoformat(since.replace(" ", "+")) if since else None
            if at is not None and at.tzinfo is None:
                raise ValueError("no offset")
            since_us = to_us(at) if at else 0
        except ValueError:
            return web.json_response(
                {"error": "since must be an RFC 3339 timestamp with an offset"}, status=400
            )
        return web.json_response(await store.recent_alerts(since_us))

    async def get_dashboard(_: web.Request) -> web.FileResponse:
        return web.FileResponse(_DASHBOARD)

    app = web.Application(middlewares=[auth])
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/api/patients", get_patients)
    app.router.add_get("/api/patients/{patient_id}", get_patient)
    app.router.add_get("/api/alerts", get_alerts)
    app.router.add_get("/", get_dashboard)
    return app


class WebServer(mode.Service):
    """Runs the aiohttp API for the lifetime of the Faust worker."""

    def __init__(self, api: web.Application, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api = api
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def on_start(self) -> None:
        self._runner = web.AppRunner(self.api, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.log.info("HTTP API on %s", self.web_url)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), timeout=5)
