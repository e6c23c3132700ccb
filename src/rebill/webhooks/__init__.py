"""Webhooks: partner events pushed to HTTPS endpoints, signed as Standard Webhooks says.

``events`` maps outbox kinds to partner event types and builds the bodies;
``signing`` wraps the ``standardwebhooks`` package; ``service`` manages
endpoints and deliveries; ``delivery`` is the worker's sending loop;
``destinations`` says which URLs and addresses webhooks may go to, and
``transport`` holds the HTTP client to them.
"""
