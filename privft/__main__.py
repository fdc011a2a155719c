from privft.cli import app

app()
