"""Integration tests of the IPAM operator (a package, so that its package-scoped fixtures end with it)."""
