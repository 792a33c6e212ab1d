"""The API's blueprints: flask-smorest's, reading JSON bodies that cannot crash the parser.

webargs reads a body with the standard library's ``json.loads``, which raises RecursionError
on a document nested a thousand levels deep (``[[[[...``): a 500 for one short request. Every
resource module makes its ``bp`` with this ``Blueprint``, whose parser answers 400 instead.
"""

from typing import Any

import flask_smorest
from flask import Request
from flask_smorest import abort
from marshmallow import Schema
from webargs.flaskparser import FlaskParser


class ArgumentsParser(FlaskParser):
    def load_json(self, req: Request, schema: Schema) -> Any:
        try:
            return super().load_json(req, schema)
        except RecursionError:
            abort(400, message="The JSON body is nested too deeply.")


class Blueprint(flask_smorest.Blueprint):
    # flask-smorest parses every @bp.arguments with the parser in this class attribute.
    ARGUMENTS_PARSER = ArgumentsParser()
