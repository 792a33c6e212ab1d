from flaskscale_gen.cli import app

app(prog_name="flaskscale")
