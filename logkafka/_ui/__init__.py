"""``logkafka ui``: a read-only web viewer of the application, audit and security streams.

``entries`` turns a consumed message into what the page shows and filters on; ``store`` keeps the
recent ones (bounded); ``tailer`` reads the topics live; ``history`` reads a time range or one
request's records from Kafka; ``app`` serves the page and its API (Starlette, the ``ui`` extra).
"""
