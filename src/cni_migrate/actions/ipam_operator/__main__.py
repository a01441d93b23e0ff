"""``python -m cni_migrate.actions.ipam_operator``: run the PodCIDRPool IPAM operator."""

from __future__ import annotations

import sys

from cni_migrate.actions.ipam_operator.app import main

if __name__ == "__main__":
    sys.exit(main())
