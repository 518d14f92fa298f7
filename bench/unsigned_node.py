"""``clawsync`` with event signing turned off: the baseline of ``bench.signing``'s HTTP
figures, run as ``python -m bench.unsigned_node serve ...`` like the real command. The
node still has its key; its store is given no signer, so it writes unsigned events
under a random origin, as before events were signed."""

from __future__ import annotations

from node.device import DeviceKey
from node.main import main


def _no_signer(_key: DeviceKey, _name: str) -> None:
    return None


if __name__ == "__main__":
    DeviceKey.signer = _no_signer  # type: ignore[assignment,method-assign]
    main()
