"""The local leaderboard: the CSV of every scoring (table.py) and the static page that compares runs."""
