"""The account's side of Kaggle, read before anything is spent: `doctor` (credentials, rules, submissions,
quota, data, weights) and the cost line a command prints before its first push."""
