"""WSGI entry point: Django's application inside ``logkafka.WSGIMiddleware``.

Served by ``manage.py runserver`` (through ``WSGI_APPLICATION``) or any WSGI server::

    gunicorn --chdir examples/django mysite.wsgi

``get_wsgi_application()`` runs ``django.setup()``, which applies ``LOGGING``.
"""

import os

from django.core.wsgi import get_wsgi_application

import logkafka

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = logkafka.WSGIMiddleware(get_wsgi_application())
