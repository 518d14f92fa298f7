"""Campaigns: long, seeded runs against real node processes, outside the pytest suite.

``python -m tests.campaigns.faults`` partitions, kills, pauses and skews a cluster while
clients write, then checks that nothing acknowledged was lost, duplicated or diverged;
``python -m tests.campaigns.hostile`` throws generated hostile input at a node and checks
that it answers every request without a server error, a traceback, a leaked secret or a
write it refused. Each prints a table and exits nonzero when a check fails.
"""
