from __future__ import annotations

import pytest

from exporter.config import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(
        secret_id="s",
        bucket_name="bucket",
        topic_arn="arn:aws:sns:us-east-1:123456789012:t",
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        brand_ids=(1234, 777),
    )
