from privft.cli.app import app

app()
