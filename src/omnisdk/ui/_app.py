"""The dashboard as an ASGI app: routing, the token check, CSRF on actions, and error pages.

Read-only unless built with `allow_actions=True`; with a `token`, every page needs it (the
`Authorization: Bearer` or `X-Omnisdk-Token` header, or the HttpOnly cookie the login form sets)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from .._errors import NotFoundError, OmniError
from .._logging import get_logger
from .._omni import Omni
from ..health import with_health
from ._context import PageContext
from ._customers import customer_page, delivery_page, search_page
from ._html import NAV, Safe, e, layout, link
from ._http import ASGIApp, Receive, Request, Response, Scope, Send, read_request, respond
from ._measures import experiment_page, experiments_page, kpis_page
from ._operations import journeys_page, outbox_page, overview_page, quarantine_page

__all__ = ["SESSION_COOKIE", "create_dashboard"]

log = get_logger("omnisdk.ui")

SESSION_COOKIE = "omnisdk_session"
Page = tuple[str, Safe] | Response


def create_dashboard(omni: Omni, *, allow_actions: bool = False, token: str | None = None,
                     stuck_after: float = 300.0) -> ASGIApp:
    """The dashboard over `omni`'s store, with `/healthz` and `/readyz`."""
    secret = secrets.token_bytes(32)
    csrf = hmac.new(secret, b"csrf", hashlib.sha256).hexdigest() if allow_actions else ""
    session = hmac.new(secret, b"session:" + (token or "").encode(), hashlib.sha256).hexdigest()

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        offered = request.headers.get("x-omnisdk-token") or request.headers.get("authorization", "").removeprefix(
            "Bearer ")
        if offered and hmac.compare_digest(offered.encode(), token.encode()):
            return True
        return hmac.compare_digest(request.cookies.get(SESSION_COOKIE, "").encode(), session.encode())

    def handle(request: Request) -> Response:
        ctx = PageContext(omni=omni, root=request.root, csrf=csrf, allow_actions=allow_actions,
                          stuck_after=stuck_after)
        if request.segments == ("login",):
            return _login(request, token, session)
        if not authorized(request):
            return _login_form(request.root, 401, "This dashboard needs its token.")
        try:
            if request.method == "POST":
                return _action(ctx, request)
            if request.method not in ("GET", "HEAD"):
                return _error(ctx, 405, "Only GET and POST are served here.")
            found = _route(ctx, request)
            if found is None:
                return _error(ctx, 404, "No such page.")
            page = found()
        except NotFoundError as exc:
            return _error(ctx, 404, str(exc))
        except OmniError as exc:
            return _error(ctx, 400, str(exc))
        if isinstance(page, Response):
            return page
        title, body = page
        return Response(body=layout(request.root, _current(request), title, body))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        if request is None:
            await respond(send, Response(status=413, body="form too large", content_type="text/plain"))
            return
        try:
            response = await asyncio.to_thread(handle, request)
        except Exception as exc:
            log.error("dashboard page failed", path_kind=request.segments[:1], error_type=type(exc).__name__)
            response = Response(status=500, body="The page failed; the log says why.", content_type="text/plain")
        await respond(send, response)

    return with_health(app, omni.store, omni.clock)


def _current(request: Request) -> str:
    first = "/" + request.segments[0] if request.segments else "/"
    return first if any(path == first for path, _ in NAV) else ""


def _route(ctx: PageContext, request: Request) -> Callable[[], Page] | None:
    s = request.segments
    match s:
        case ():
            return lambda: overview_page(ctx)
        case ("customers",):
            return lambda: search_page(ctx, request.arg("q"))
        case ("customers", cid):
            return lambda: customer_page(ctx, cid)
        case ("customers", cid, "deliveries", did):
            return lambda: delivery_page(ctx, cid, did)
        case ("journeys",):
            return lambda: journeys_page(ctx)
        case ("outbox",):
            return lambda: outbox_page(ctx, request.arg("hours"))
        case ("quarantine",):
            return lambda: quarantine_page(ctx)
        case ("experiments",):
            return lambda: experiments_page(ctx)
        case ("experiments", name):
            return lambda: experiment_page(ctx, name, request.arg("control"), request.arg("goal"))
        case ("kpis",):
            return lambda: kpis_page(ctx, request.arg("by", "channel"), request.arg("days"))
    return None


def _same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused (SameSite and CSRF aside)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _action(ctx: PageContext, request: Request) -> Response:
    """Retry or cancel a run, repair or drop a quarantined row: only with actions on, a valid CSRF token
    and from this origin."""
    if not ctx.allow_actions:
        return _error(ctx, 403, "Actions are off: start the dashboard with --allow-actions to change the store.")
    if not hmac.compare_digest(request.form.get("csrf", "").encode(), ctx.csrf.encode()) or not _same_origin(request):
        return _error(ctx, 403, "This form is stale or came from another site; reload the page and try again.")
    omni = ctx.omni
    match request.segments:
        case ("runs", run_id, "retry"):
            run = omni.retry_run(run_id)
            message, back = f"Run {run.id} of {run.journey} is {run.status} again.", "/journeys"
        case ("runs", run_id, "cancel"):
            run = omni.cancel_run(run_id)
            message, back = f"Run {run.id} of {run.journey} is {run.status}.", "/journeys"
        case ("quarantine", qid, "repair") if qid.isdigit():
            result = omni.repair_quarantined([int(qid)])
            message = (f"Row {qid} is back in its table." if int(qid) in result.repaired else
                       f"Row {qid} was kept: {result.failed.get(int(qid), 'not found')}")
            back = "/quarantine"
        case ("quarantine", qid, "drop") if qid.isdigit():
            dropped = omni.drop_quarantined([int(qid)])
            message, back = (f"Row {qid} was dropped." if dropped else f"Row {qid} was not found."), "/quarantine"
        case _:
            return _error(ctx, 404, "No such action.")
    log.info("dashboard action", action=request.segments[-1], target=request.segments[0])
    body = Safe(f'<p role="status">{e(message)}</p><p>{link(ctx.root, back, "Back")}</p>')
    return Response(body=layout(ctx.root, back, "Done", body))


def _error(ctx: PageContext, status: int, message: str) -> Response:
    body = Safe(f'<p role="alert">{e(message)}</p><p>{link(ctx.root, "/", "Overview")}</p>')
    return Response(status=status, body=layout(ctx.root, "", "Not possible" if status < 500 else "Error", body))


def _login(request: Request, token: str | None, session: str) -> Response:
    if token is None:
        return Response.redirect(request.root + "/")
    if request.method != "POST":
        return _login_form(request.root, 200, "")
    offered = request.form.get("token", "")
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return _login_form(request.root, 401, "That token is not this dashboard's.")
    cookie = f"{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path={request.root or '/'}"
    return Response.redirect(request.root + "/", {"set-cookie": cookie})


def _login_form(root: str, status: int, message: str) -> Response:
    alert = f'<p role="alert">{e(message)}</p>' if message else ""
    body = Safe(f'{alert}<form method="post" action="{e(root + "/login")}"><label for="token">Token</label> '
                '<input id="token" name="token" type="password" autocomplete="current-password"> '
                '<button type="submit">Sign in</button></form>')
    return Response(status=status, body=layout(root, "", "Sign in", body))


