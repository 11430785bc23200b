"""The platform operations the receiver runs as commands (``pitwatch rollback``,
``restore``, ``restart``, ``deploy``): a person at a terminal runs the same code.
They import the core only, never the receiver (docs/architecture.md, "Layers")."""
