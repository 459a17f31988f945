"""The `headwater` command line (Typer + Rich), a thin layer over :class:`headwater.Workspace`."""
