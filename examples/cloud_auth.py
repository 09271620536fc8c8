"""Signing in to a managed Kafka from a logging configuration: AWS MSK with IAM (OAUTHBEARER).

librdkafka asks ``oauth_cb`` for a token when it connects and again before the token expires.
The handler imports the function named in ``producer_config`` (``ext://examples.cloud_auth.msk_iam_token``),
so the configuration can stay in YAML, a Django ``LOGGING`` dict or gunicorn's ``logconfig_dict``::

    producer_config:
      security.protocol: SASL_SSL
      sasl.mechanisms: OAUTHBEARER
      oauth_cb: ext://examples.cloud_auth.msk_iam_token

The token is signed with the AWS credentials boto3 finds (environment, profile, the pod's or instance's
role); the region is ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``). Needs
``pip install aws-msk-iam-sasl-signer-python``.
"""

from __future__ import annotations

import os
from typing import Any


def msk_iam_token(oauth_config: Any) -> tuple[str, float]:
    """A token for AWS MSK's IAM sign-in and when it expires (seconds since the epoch), as librdkafka asks."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return token, expiry_ms / 1000
