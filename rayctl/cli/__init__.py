"""The `rayctl` command line: typer app, one module per command group; output.py is the one
output layer (a result model printed as text or, with --json, as JSON). Only parses and
renders: the work is in rayctl.ops."""
