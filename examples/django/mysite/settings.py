"""Django settings of the logkafka example project; the part that matters is ``LOGGING``.

Django hands ``LOGGING`` to ``logging.config.dictConfig`` when it starts
(``django.setup()``, run by ``manage.py`` and by ``get_wsgi_application()``), so
adding Kafka is two entries: the ``json`` formatter and the ``kafka`` handler.
Django's own loggers (``django.request`` for 4xx/5xx answers and failing views,
``django.server`` for runserver's lines) go to the same handlers.

Environment: ``KAFKA_BOOTSTRAP_SERVERS``; the topics ``LOGKAFKA_TOPIC`` and
``LOGKAFKA_AUDIT_TOPIC``, or their defaults; ``DJANGO_DEBUG=1`` for debug mode.
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "logkafka-example-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
# the Django app inside logkafka.WSGIMiddleware: request context and request_completed records
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "logkafka.JsonFormatter", "service_name": "shop"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        "kafka": {
            "class": "logkafka.KafkaLogHandler",
            "formatter": "json",
            # from the environment when not given: KAFKA_BOOTSTRAP_SERVERS, LOGKAFKA_TOPIC, ...
            # "bootstrap_servers": "kafka-1:9092,kafka-2:9092",
            # "topic": "logs.application.v1",
        },
    },
    "loggers": {
        "django": {"level": "INFO", "handlers": ["console", "kafka"], "propagate": False},
        # runserver's access lines: request_completed from the middleware says the same
        "django.server": {"level": "WARNING", "handlers": ["console"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["console", "kafka"]},
}
