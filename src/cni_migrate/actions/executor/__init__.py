"""The executor: runs a migration plan (``cni-migrate.io/plan/v1``) step by step against a live cluster, with a
write-ahead journal in the cluster (a ``MigrationRun``) mirrored to a local file, a Lease so two executors never
run the same plan, backups before anything destructive, resume after a crash and rollback.

Modules, one concern each: :mod:`.planfile` (load and verify a plan), :mod:`.journal` (the journal and its two
stores), :mod:`.lease` (mutual exclusion), :mod:`.backups` (save, checksum, strip, restore order),
:mod:`.tools` (kubectl/helm subprocesses pinned to the chosen context), :mod:`.checks`, :mod:`.drain`
(evictions as careful SREs drain), :mod:`.steps` (one runner per action kind) and :mod:`.run` (the loop:
ordering, gates, resume, rollback, events).
"""
