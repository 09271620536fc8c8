"""URLs of the logkafka example project."""

from django.urls import path

from mysite import views

urlpatterns = [
    path("health/", views.health),
    path("orders/<int:order_id>/", views.order_detail),
    path("orders/<int:order_id>/cancel/", views.cancel_order),
]
