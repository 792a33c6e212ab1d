"""Marshmallow schemas: what the API reads and writes."""

from datetime import UTC

from marshmallow import Schema, fields, validate

# Ids and offsets fit the database's 32-bit integers: larger ones are refused, not sent to it.
MAX_INT = 2**31 - 1


class UTCDateTime(fields.DateTime):
    """A moment in UTC, always written with its offset (SQLite hands back naive datetimes)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    username = fields.String(
        required=True,
        validate=[
            validate.Length(min=3, max=64),
            validate.Regexp(r"^[A-Za-z0-9_.-]+$", error="Use letters, digits, '_', '.' or '-'."),
        ],
    )
    # Private: a user's e-mail address is written, never shown to other users.
    email = fields.Email(required=True, load_only=True, validate=validate.Length(max=120))
    password = fields.String(required=True, load_only=True, validate=validate.Length(8, 128))
    created_at = UTCDateTime(dump_only=True)


class UserUpdateSchema(UserSchema):
    """The fields of a user that an update may change, all optional."""


class TokenSchema(Schema):
    access_token = fields.String(dump_only=True)
    refresh_token = fields.String(dump_only=True)
    token_type = fields.Constant("Bearer", dump_only=True)
    expires_in = fields.Integer(dump_only=True, metadata={"description": "Seconds"})


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True)
