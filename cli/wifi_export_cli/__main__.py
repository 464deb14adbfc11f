"""`python -m wifi_export_cli`: the same as the `wifi-export` console script."""

from wifi_export_cli.main import main

main()
