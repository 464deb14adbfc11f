"""`wifi-export`: start, watch, list and cancel export runs (docs/contracts.md,
"Operations CLI"; docs/runbook.md).

It reads and writes the exporter's S3 state through the exporter's own key
layout (`exporter.run.keys`) and S3 adapter (`exporter.aws.S3Store`): one layout,
one place. It finds the deployment from a CloudFormation stack's outputs or from
the function's own environment variables, and honours `AWS_ENDPOINT_URL`.
"""
