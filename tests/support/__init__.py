"""What the tests share: builders of events, real stores and storage, Automerge test
clients, real node processes. No test lives here; test modules import from here, never
from each other."""
