"""The shipped division tree (divisions.csv) and the script that builds it."""
