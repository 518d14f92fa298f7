"""Bad input to a node's HTTP routes: one test per kind, each refused with a clear 4xx."""
