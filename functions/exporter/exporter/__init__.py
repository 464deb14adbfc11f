"""wifi-export: analytiks WiFi footfall export into Athena-ready S3 partitions."""
