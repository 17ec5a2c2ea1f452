"""``python -m bosun.engine.native``: build the C++ decode step for this machine."""

from bosun.engine.native import main

raise SystemExit(main())
