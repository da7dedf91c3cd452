"""What this machine puts on Kaggle as datasets: a run trained on your own GPU and the FID weights
(`make upload`, `make upload-weights`: upload.py), and the records of what went up (store.py), which the
notebook builder reads to attach them."""
