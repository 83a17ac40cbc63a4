"""What every stage shares: errors, exit codes, the records, the watch list, private files."""
