"""What a run tells the outside: callbacks, the report channel, loggers, sample texts."""
