"""Exit codes the operations share with the receiver that runs them as commands."""

# Done and the app is healthy, but something the platform relies on is not: a restore
# whose replication did not resume. The receiver records the run's result as "degraded".
DEGRADED = 4
