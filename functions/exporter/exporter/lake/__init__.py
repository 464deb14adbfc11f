"""Lake coverage: per brand, time basis and day, what the table holds and which run wrote it."""
