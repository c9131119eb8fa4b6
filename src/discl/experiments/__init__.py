"""The paper's experiments as one command: experiment files (``spec``), launching their runs (``runner``),
collecting them into tables (``aggregate``) and figures (``figures``). Usage: docs/experiments.md."""
