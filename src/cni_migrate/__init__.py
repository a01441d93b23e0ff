"""cni-migrate: plan, lint, execute and verify CNI migrations to Cilium."""

__version__ = "0.1.0"
