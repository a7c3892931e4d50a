from lookalike.cli import app

app(prog_name="lookalike")
