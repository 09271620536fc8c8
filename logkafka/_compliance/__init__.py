"""Compliance: ``logkafka report`` (a period's audit and security figures, JSON and HTML) and
``logkafka verify`` (the audit and security hash chains, see ``logkafka._chain``).

``period`` reads a period of topics by timestamp; ``chains`` verifies the chains; ``figures`` adds up
the report; ``secrets`` finds what redaction would have removed; ``html`` renders the report as one
self-contained page.
"""
