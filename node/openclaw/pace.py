"""How often ``clawsync openclaw watch`` looks and tries again: defined here alone, in a
module that imports nothing, so that the commands' ``--help`` (``node.cli.openclaw``)
shows them without loading the bridge (``node.openclaw.bridge``, ``refusals``)."""

#: Seconds between two looks at the stores while watching: a commit reaches the node
#: within about this plus one append.
POLL_S = 0.2

#: The soonest (s) a record the node refused for its time is tried again, even if the
#: node's words say its clock allows it sooner: at most one refused append per second
#: per waiting session, however many looks.
AHEAD_RETRY_MIN_S = 1.0
#: The latest (s): a record is tried again when the node's clock should allow it (its
#: time, less the node's bound and clock, from the refusal), but no later than this, as
#: the node's clock may be set right (or its bound raised) meanwhile; also the wait when
#: the refusal does not say the node's clock. A record waits at most this much longer
#: than it must; a waiting session costs one refused append per this much at least.
AHEAD_RETRY_MAX_S = 60.0
#: A record dated more than this beyond what the node takes (its bound ahead of its clock)
#: is further ahead than a clock running fast explains: its timestamp, or the clock of
#: OpenClaw's machine or the node's, is wrong. It waits as any (set right, it goes in),
#: but is said so: waiting will not bring it in.
AHEAD_PLAUSIBLE_MAX_S = 86_400.0


def days_said(seconds: float) -> str:
    """``seconds`` in days, as the commands' words say a lead such as
    ``AHEAD_PLAUSIBLE_MAX_S`` ("more than a day ahead").

    >>> days_said(AHEAD_PLAUSIBLE_MAX_S), days_said(2 * 86_400.0), days_said(43_200.0)
    ('a day', '2 days', '0.5 days')
    """
    days = seconds / 86_400
    return "a day" if days == 1 else f"{days:g} days"
