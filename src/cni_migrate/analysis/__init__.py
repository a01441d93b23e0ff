"""Analysis layer: pure functions over facts (lint, plan, IPAM allocation, problem checks). No I/O."""
