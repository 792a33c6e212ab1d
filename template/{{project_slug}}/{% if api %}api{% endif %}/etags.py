"""Optimistic concurrency: an update or delete may name the version it read (``If-Match``).

GET views carry flask-smorest's ``@bp.etag``, which sets the ``ETag`` and answers 304 to a
matching ``If-None-Match``. flask-smorest would also demand ``If-Match`` on every change (428
without it); this API keeps it optional, so changes check it here, through the same library.
"""

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema


def check_if_match(blp: Blueprint, resource: object, schema: type[Schema]) -> None:
    """412 when the request's ``If-Match`` names another version of ``resource``.

    Call it before changing the resource: a change based on a stale copy is refused instead
    of silently overwriting someone else's.
    """
    if request.if_match:
        blp.check_etag(resource, schema)
