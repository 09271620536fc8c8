"""Views that log as any Django view does: ``logging.getLogger(__name__)`` and ``extra``."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

import logkafka

log = logging.getLogger(__name__)  # "mysite.views"
ORDERS = {42: {"id": 42, "status": "paid", "total": 99.5}}


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def order_detail(request: HttpRequest, order_id: int) -> JsonResponse:
    order = ORDERS.get(order_id)
    if order is None:
        log.warning("Order %s not found", order_id, extra={"code": "ORDER_NOT_FOUND", "order_id": order_id})
        raise Http404("no such order")
    log.info("Order %s viewed", order_id, extra={"code": "ORDER_VIEWED", "order_id": order_id,
                                                 "status": order["status"]})
    return JsonResponse(order)


@require_POST
def cancel_order(request: HttpRequest, order_id: int) -> JsonResponse:
    order = ORDERS.get(order_id)
    if order is None:
        raise Http404("no such order")
    old = dict(order)
    order["status"] = "cancelled"
    log.info("Order %s cancelled", order_id, extra={"code": "ORDER_CANCELLED", "order_id": order_id})
    logkafka.audit("order.cancel", actor=request.headers.get("X-User", "anonymous"), resource=f"order/{order_id}",
                   outcome="success", diff={"old": {"status": old["status"]}, "new": {"status": order["status"]}})
    return JsonResponse(order)
