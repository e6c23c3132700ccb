"""The portal's pages: ``/portal/start/{token}``, ``/portal``, ``/portal/subscriptions/{id}`` and their forms.

Server-rendered with Jinja2, no JavaScript. Every form carries the session's
CSRF token and an idempotency key of its own, so a double submit acts once.
Every action is a ``SelfService`` call, which checks what a customer may do
and then takes the same service path as a staff change.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from rebill.documents import links
from rebill.domain.errors import RebillError
from rebill.ids import to_global_id
from rebill.portal import views
from rebill.portal.sessions import (
    Session,
    clear_cookie,
    csrf_ok,
    current_session,
    end_session,
    open_session,
    set_cookie,
)
from rebill.portal.tokens import ANCHORS, Flow, Link, LinkStatus, consume_link, peek_link
from rebill.services.customers import SelfService
from rebill.services.runtime import Common, Result, Services

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.filters["day"] = lambda d: f"{d:%B} {d.day}, {d.year}"

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_FORM_BYTES = 64 * 1024

PROBLEMS = {
    LinkStatus.USED: (
        410,
        "This link has already been used",
        "Each link opens your account once. If you opened it a moment ago on this device, "
        "you may still be signed in: go to your subscriptions.",
    ),
    LinkStatus.EXPIRED: (
        410,
        "This link has expired",
        "Links in our e-mails work for 7 days, and links from the store for one hour.",
    ),
    LinkStatus.UNKNOWN: (
        404,
        "This link is not valid",
        "It may have been copied incompletely. Open it again from the e-mail, making sure the whole address is used.",
    ),
}
NEXT_STEP = (
    "To manage your subscriptions, use the link in the most recent e-mail from us, or ask the store for a new link."
)

DONE = {
    "postpone": "Your next order date has been moved.",
    "cancel": "Your subscription has been cancelled. A confirmation is on its way to you.",
    "payment-method": "Your new card is saved and is now your default payment method.",
    "billing-address": "Your billing address has been updated.",
    "renew": "Your subscription has been renewed.",
}


def _page(request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
    return TEMPLATES.TemplateResponse(request, name, dict(context), status_code=status, headers=HEADERS)


def _message(request: Request, title: str, text: str, status: int, **extra: Any) -> Response:
    return _page(request, "message.html", {"title": title, "text": text, "next_step": NEXT_STEP, **extra}, status)


def _same_origin(request: Request) -> bool:
    """A browser's cross-site POST carries another Origin; none (older clients, tests) is let through to CSRF."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.url.netloc


def _too_large(request: Request) -> bool:
    raw = request.headers.get("content-length") or "0"
    return not raw.isdigit() or int(raw) > MAX_FORM_BYTES


def _pk(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


class Portal:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.self_service = SelfService(services)
        self.sandbox = all(g.kind == "sandbox" for g in services.settings.gateways)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/portal", self.overview, methods=["GET"]),
            Route("/portal/start/{token}", self.start, methods=["GET", "POST"]),
            Route("/portal/subscriptions/{id}", self.detail, methods=["GET"]),
            Route("/portal/subscriptions/{id}/{action}", self.act, methods=["POST"]),
            Route("/portal/sign-out", self.sign_out, methods=["POST"]),
            Mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static"),
            # Links in notifications written before the portal existed.
            Route("/customers/{id}/payment-methods", self.old_payment_link, methods=["GET"]),
            Route("/subscriptions/{id}/renew", self.old_renew_link, methods=["GET"]),
        ]

    # -- starting a session ------------------------------------------------

    async def start(self, request: Request) -> Response:
        token = request.path_params["token"]
        now = self.services.clock.now()
        if request.method == "GET":
            link = await peek_link(self.services.engine, token, now)
            if link.status is LinkStatus.VALID:
                return _page(request, "start.html", {"title": "Manage your subscriptions", "action": request.url.path})
            return self._link_problem(request, link)
        if not _same_origin(request):
            return _message(request, "This request came from another site", "Nothing was changed.", 403)
        link = await consume_link(self.services.engine, token, now)
        if link.status is LinkStatus.VALID:
            assert link.customer_id is not None
            secret = await open_session(self.services, link.customer_id, link.return_url)
            response = _redirect(await self._target(link))
            set_cookie(self.services, request, response, secret)
            return response
        session = await current_session(self.services, request)
        if link.status is LinkStatus.USED and session is not None and session.customer_id == link.customer_id:
            return _redirect(await self._target(link))
        return self._link_problem(request, link)

    def _link_problem(self, request: Request, link: Link) -> Response:
        status, title, text = PROBLEMS[link.status]
        return _message(request, title, text, status, show_portal_link=link.status is LinkStatus.USED)

    async def _target(self, link: Link) -> str:
        """Where a link lands: the invoice it names, its subscription's page at the flow's section, or the
        overview."""
        if link.invoice_id is not None and link.customer_id is not None:
            # The document route checks that the signed-in customer may read it, as for any download.
            return links.page_path(links.INVOICES, to_global_id("Invoice", link.invoice_id))
        anchor = ANCHORS[link.flow]
        if link.subscription_id is not None and link.customer_id is not None:
            view = await views.subscription(self.services, link.customer_id, link.subscription_id)
            if view is not None and view.final:
                anchor = ""  # cancelled or ended since the e-mail: its page says so, with nothing to act on
            return f"/portal/subscriptions/{link.subscription_id}{anchor}"
        if link.flow is not Flow.OVERVIEW and link.customer_id is not None:
            running = [v for v in await views.subscriptions(self.services, link.customer_id) if not v.final]
            if len(running) == 1:
                return f"/portal/subscriptions/{running[0].id}{anchor}"
        return "/portal"

    async def _session(self, request: Request) -> Session | Response:
        session = await current_session(self.services, request)
        if session is None:
            return _message(
                request,
                "Please open your link again",
                "You are not signed in, or you have been away for more than 30 minutes.",
                401,
            )
        return session

    # -- pages -------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        session = await self._session(request)
        if isinstance(session, Response):
            return session
        subscriptions = await views.subscriptions(self.services, session.customer_id)
        account = await views.account(self.services, session.customer_id)
        return _page(
            request,
            "overview.html",
            {
                "title": "Your subscriptions",
                "subscriptions": subscriptions,
                "account": account,
                "session": session,
                "return_url": session.return_url,
            },
        )

    async def detail(self, request: Request) -> Response:
        session = await self._session(request)
        if isinstance(session, Response):
            return session
        sid = _pk(request.path_params["id"])
        done = request.query_params.get("done", "")
        return await self._detail(request, session, sid, notice=DONE.get(done))

    async def _detail(
        self,
        request: Request,
        session: Session,
        sid: int | None,
        *,
        notice: str | None = None,
        errors: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        view = await views.subscription(self.services, session.customer_id, sid) if sid is not None else None
        if view is None:
            return self._not_found(request, session)
        account = await views.account(self.services, session.customer_id)
        if notice == DONE["cancel"] and view.cancellation_date is not None:
            # Under contract a cancellation waits for the term's end (DOMAIN.md "Contract terms").
            notice = f"Your cancellation is recorded: it takes effect on {view.cancellation_date:%B} " + (
                f"{view.cancellation_date.day}, {view.cancellation_date.year}. A confirmation is on its way to you."
            )
        return _page(
            request,
            "subscription.html",
            {
                "title": view.title,
                "sub": view,
                "account": account,
                "session": session,
                "return_url": session.return_url,
                "notice": notice,
                "errors": errors or {},
                "form": form or {},
                "keys": {name: secrets.token_urlsafe(16) for name in DONE},
                "sandbox": self.sandbox,
            },
            status,
        )

    def _not_found(self, request: Request, session: Session) -> Response:
        return _message(
            request,
            "Subscription not found",
            "There is no such subscription in your account.",
            404,
            show_portal_link=True,
            session=session,
        )

    # -- actions -----------------------------------------------------------

    async def act(self, request: Request) -> Response:
        session = await self._session(request)
        if isinstance(session, Response):
            return session
        sid = _pk(request.path_params["id"])
        action = request.path_params["action"]
        if sid is None or action not in DONE:
            return self._not_found(request, session)
        if _too_large(request):
            return _message(request, "That form is too large", "Nothing was changed.", 413, session=session)
        form = await request.form(max_files=0, max_fields=20)
        if not _same_origin(request) or not csrf_ok(session, form.get("csrf")):
            return _message(
                request,
                "This form has expired",
                "Nothing was changed. Go back, reload the page and try again.",
                403,
                show_portal_link=True,
                session=session,
            )
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("csrf",)}
        handler = self.ACTIONS[action]
        try:
            result = await handler(self, session.customer_id, sid, form, self._common(action, form))
        except RebillError as exc:
            result = Result(errors=[exc])
        if result.ok:
            return _redirect(f"/portal/subscriptions/{sid}?done={action}")
        error = result.errors[0]
        if error.code == "NOT_FOUND" and error.field == ["subscriptionId"]:
            return self._not_found(request, session)
        return await self._detail(request, session, sid, errors={action: self._explain(error)}, form=fields, status=422)

    @staticmethod
    def _common(action: str, form: FormData) -> Common:
        key = form.get("key")
        valid = isinstance(key, str) and 8 <= len(key) <= 64 and key.isascii()
        reason = form.get("reason")
        reason_text = reason.strip()[:500] if isinstance(reason, str) and reason.strip() else None
        return Common(
            idempotency_key=f"portal:{action}:{key}" if valid else None,
            reason=reason_text,
        )

    @staticmethod
    def _explain(error: RebillError) -> str:
        if error.code == "VERSION_CONFLICT":
            return "This subscription changed while you were looking at it. Check the page and try again."
        if error.code == "IDEMPOTENCY_KEY_REUSED":
            return "This form was already sent. Check the page: to make another change, use the form again."
        return error.message[:1].upper() + error.message[1:]

    async def _postpone(self, customer: int, sid: int, form: FormData, common: Common) -> Result:
        raw = form.get("date")
        try:
            wanted = date.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            wanted = None
        if wanted is None:
            raise RebillError("choose a date as YYYY-MM-DD", code="INVALID_INPUT", field=["date"])
        request = {"subscriptionId": sid, "date": wanted.isoformat()}
        return await self.self_service.postpone(customer, common, request, sid, date_=wanted)

    async def _cancel(self, customer: int, sid: int, form: FormData, common: Common) -> Result:
        return await self.self_service.cancel(customer, common, {"subscriptionId": sid}, sid)

    async def _renew(self, customer: int, sid: int, form: FormData, common: Common) -> Result:
        return await self.self_service.renew(customer, common, {"subscriptionId": sid}, sid)

    async def _payment_method(self, customer: int, sid: int, form: FormData, common: Common) -> Result:
        number = str(form.get("number") or "").replace(" ", "").replace("-", "")
        month, year = _int_field(form, "expMonth"), _int_field(form, "expYear")
        if year is not None and year < 100:
            year += 2000
        if not number:
            raise RebillError("enter the card number", code="TOKEN_REQUIRED", field=["number"])
        request = {"customerId": customer, "number": number, "expMonth": month, "expYear": year}
        return await self.self_service.replace_card(
            customer, common, request, sid, gateway_token=number, exp_month=month, exp_year=year
        )

    async def _billing_address(self, customer: int, sid: int, form: FormData, common: Common) -> Result:
        await self.self_service.own_subscription(customer, sid)
        address = {k: str(form.get(k) or "") for k in ("line1", "line2", "city", "region", "postalCode", "country")}
        return await self.self_service.update_billing_address(
            customer, common, {"customerId": customer, **address}, address=address
        )

    ACTIONS: dict[str, Callable[[Portal, int, int, FormData, Common], Awaitable[Result]]] = {
        "postpone": _postpone,
        "cancel": _cancel,
        "renew": _renew,
        "payment-method": _payment_method,
        "billing-address": _billing_address,
    }

    async def sign_out(self, request: Request) -> Response:
        session = await current_session(self.services, request)
        form = {} if _too_large(request) else await request.form(max_files=0, max_fields=20)
        if session is not None and csrf_ok(session, form.get("csrf")):
            await end_session(self.services, session)
        response = _message(request, "You are signed out", "Thank you. You can close this page.", 200)
        clear_cookie(self.services, request, response)
        return response

    # -- links from before the portal ---------------------------------------

    async def old_payment_link(self, request: Request) -> Response:
        sub = _pk(request.query_params.get("subscription", ""))
        return await self._old_link(request, _pk(request.path_params["id"]), sub, Flow.PAYMENT_METHOD)

    async def old_renew_link(self, request: Request) -> Response:
        return await self._old_link(request, None, _pk(request.path_params["id"]), Flow.RENEW)

    async def _old_link(self, request: Request, customer: int | None, sid: int | None, flow: Flow) -> Response:
        """Signed in: straight to the task. Otherwise a page that says how to get in (the URL alone is no key)."""
        session = await current_session(self.services, request)
        if session is not None and (customer is None or customer == session.customer_id):
            if sid is not None and await views.subscription(self.services, session.customer_id, sid) is not None:
                return _redirect(f"/portal/subscriptions/{sid}{ANCHORS[flow]}")
            return _redirect("/portal")
        task = "update your payment method" if flow is Flow.PAYMENT_METHOD else "renew your subscription"
        return _message(
            request,
            "Please use your sign-in link",
            f"To {task}, open the newest sign-in link we e-mailed you (“Manage your subscription”, valid for "
            "7 days), or ask the store for a new one. For your security, this address alone does not open "
            "your account.",
            200,
        )


def _int_field(form: FormData, name: str) -> int | None:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    if not text.isdigit() or len(text) > 4:
        raise RebillError(f"{name} must be a number", code="INVALID_INPUT", field=[name])
    return int(text)


def portal_routes(services: Services) -> list[BaseRoute]:
    return Portal(services).routes()
