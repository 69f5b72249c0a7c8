"""``python -m routing.simulation`` (the options of ``manage.py simulate``)."""

from routing.simulation.command import main

raise SystemExit(main())
