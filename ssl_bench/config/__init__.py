"""The suite as configuration: YAML reading, the typed Suite and its checks, run specs and their hashes, budgets,
monitor settings. Nothing here trains, writes or reads results."""
