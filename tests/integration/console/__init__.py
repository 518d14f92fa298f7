"""The web console in a real headless Chromium, against real node processes."""
