#!/usr/bin/env python
"""Django's command-line utility for the logkafka example project.

    cd examples/django
    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python manage.py runserver --noreload 127.0.0.1:8000
    curl -s localhost:8000/orders/42/ -H 'X-Correlation-ID: demo-1'

See mysite/settings.py for the ``LOGGING`` setting and mysite/wsgi.py for the middleware.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
