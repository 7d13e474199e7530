"""The `rayctl` command line: typer app, one module per command group, rich output."""
