"""The S3 client of every object store OpenWA writes to (backups and media): one place for
the endpoint, region, credentials, addressing style and retries the STORAGE_S3_* settings give."""
from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from app.config import Config


def s3_client(config: Config, storage_type: str) -> Any:
    """A boto3 S3 client for ``storage_type`` (``s3`` or ``minio``). MinIO serves buckets
    under the path unless told to use virtual hosts; STORAGE_S3_FORCE_PATH_STYLE forces it."""
    style = "path" if config.storage_s3_force_path_style or storage_type == "minio" else "auto"
    return boto3.client(
        "s3",
        endpoint_url=config.storage_s3_endpoint,
        region_name=config.storage_s3_region,
        aws_access_key_id=config.storage_s3_access_key_id,
        aws_secret_access_key=config.storage_s3_secret_access_key,
        config=BotoConfig(s3={"addressing_style": style},
                          retries={"max_attempts": 5, "mode": "standard"}),
    )
