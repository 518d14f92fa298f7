"""A real OpenClaw on this machine, for the bridge's fixtures and its end-to-end run:
the installer, a fake model server, one OpenClaw "device", the recorder of the fixtures
in ``tests/data/openclaw/`` and the two-device run (``python -m tests.openclaw.e2e``)."""
