"""The run's life: start and finish a task, its record, identity, resume, checkpoint IO, loggers
and tracking, and loading a finished run."""
