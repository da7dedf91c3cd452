"""Running jobs on Kaggle: one typed record per job, one store, one runner (push once, follow several, fetch,
record), and the commands that are descriptions of their jobs (submit, train-kaggle)."""
