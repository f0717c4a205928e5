"""``python -m apps.market_data_service.cli``: the ``market-data`` command."""

from apps.market_data_service.cli.commands import main

raise SystemExit(main())
