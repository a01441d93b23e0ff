"""CLI layer: thin typer commands over facts, analysis and actions."""
