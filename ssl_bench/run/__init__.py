"""One suite on disk: the suite runner, cooperative workers, the stages of a run, the recorder and the ledger,
the output folder, locks and claims, status, and the launchers that start workers."""
