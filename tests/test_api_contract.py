"""The generated REST API keeps its own contract.

For every combination with ``api``: each version's OpenAPI document is valid, and
schemathesis, authenticated with a real token, finds no 5xx and no response that
contradicts the document. The PostgreSQL test runs the generated suite against the
machine's database.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from support import postgres
from support.commands import project_env, run, run_project_tests
from support.postgres import throwaway_database
from support.rendering import render
from support.services import require_service

COMBINATIONS = {
    "v1": {"api": True, "api_versions": "v1", "web_ui": True},
    "v1-api-only": {"api": True, "api_versions": "v1", "web_ui": False},
    "v1v2": {"api": True, "api_versions": "v1+v2", "web_ui": True},
    "v1v2-api-only": {"api": True, "api_versions": "v1+v2", "web_ui": False},
}

# Examples per operation: enough to reach every status path, small enough for ~1 min per project.
EXAMPLES = 15

# Runs inside the generated project (its own process: each project has its own package).
FUZZ = textwrap.dedent(
    '''
    import os
    from functools import partial

    import schemathesis
    from hypothesis import HealthCheck, settings
    from openapi_spec_validator import validate
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    from {slug} import create_app, passwords
    from {slug}.api.models import Token
    from {slug}.extensions import db
    from {slug}.models import User

    # Cheap password hashes: the fuzzer registers and logs in a lot.
    passwords.generate_password_hash = partial(
        passwords.generate_password_hash, method="pbkdf2:sha256:1000"
    )
    for limit in ("API_RATE_LIMIT", "LOGIN_RATE_LIMIT_PER_ADDRESS", "LOGIN_RATE_LIMIT_PER_ACCOUNT"):
        os.environ[limit] = "100000 per minute"
    app = create_app("testing")
    with app.app_context():
        db.create_all()
    client = app.test_client()
    ACCOUNT = {{"username": "fuzzer", "email": "fuzzer@example.com", "password": "fuzz-passphrase"}}
    assert client.post("/api/v1/users", json=ACCOUNT).status_code == 201
    assert client.post("/api/v1/tokens", auth=("fuzzer", "fuzz-passphrase")).status_code == 201


    def bearer():
        """A fresh token (a fuzzed DELETE may revoke a token or delete the user)."""
        with app.app_context():
            user = db.session.scalar(db.select(User).filter_by(username="fuzzer"))
            token = Token.issue(user or User(**ACCOUNT))
            db.session.add(token)
            db.session.commit()
            return {{"Authorization": "Bearer " + token.access_token}}


    def check(case):
        case.call_and_validate(
            headers=bearer(),
            checks=[not_a_server_error, response_schema_conformance],
        )


    for version in {versions!r}:
        validate(client.get(f"/api/{{version}}/openapi.json").get_json())
        '''
)

PER_VERSION = textwrap.dedent(
    """

    schema_{version} = schemathesis.openapi.from_wsgi("/api/{version}/openapi.json", app)


    @schema_{version}.parametrize()
    @settings(max_examples={examples}, deadline=None, suppress_health_check=list(HealthCheck))
    def test_{version}_contract(case):
        check(case)
    """
)


@pytest.fixture(scope="module", params=sorted(COMBINATIONS))
def api_project(request, template_dir: Path, tmp_path_factory) -> tuple[Path, dict]:
    answers = COMBINATIONS[request.param]
    dest = tmp_path_factory.mktemp(request.param) / "project"
    render(template_dir, dest, {"project_name": "Contract Demo", **answers})
    return dest, answers


def test_openapi_documents_validate_and_schemathesis_finds_nothing(api_project, tmp_path):
    project, answers = api_project
    versions = ["v1", "v2"] if answers["api_versions"] == "v1+v2" else ["v1"]
    fuzz = tmp_path / "test_fuzz_contract.py"
    fuzz.write_text(
        FUZZ.format(slug="contract_demo", versions=versions)
        + "".join(PER_VERSION.format(version=v, examples=EXAMPLES) for v in versions)
    )
    proc = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(fuzz),
        ],
        cwd=tmp_path,
        env=project_env(project),
        timeout=300,
    )
    assert " passed" in proc.stdout


def test_the_generated_suite_passes_on_postgresql_and_spares_database_url(
    template_dir: Path, tmp_path: Path
):
    """The suite runs on ``TEST_DATABASE_URL``; the developer's ``DATABASE_URL`` is untouched.

    The test database starts already migrated (an earlier ``flask db upgrade``): the migration
    tests must still build the schema from nothing.
    """
    require_service("PostgreSQL", 5432)
    project = render(
        template_dir,
        tmp_path / "project",
        {"api": True, "api_versions": "v1+v2", "web_ui": True, "database": "postgresql"},
    )
    slug = "project"
    upgrade = [sys.executable, "-m", "flask", "--app", slug, "db", "upgrade"]
    with throwaway_database("flaskscale_dev") as dev, throwaway_database("flaskscale_test") as test:
        for name in (dev, test):
            run(upgrade, project, {**project_env(project), "DATABASE_URL": postgres.url(name)})
        postgres.execute(
            "INSERT INTO users (username, email, password_hash, created_at)"
            " VALUES ('mine', 'mine@example.com', 'x', now())",
            postgres.dsn(dev),
        )
        run_project_tests(
            project,
            env={"TEST_DATABASE_URL": postgres.url(test), "DATABASE_URL": postgres.url(dev)},
        )
        assert postgres.fetch("SELECT username FROM users", postgres.dsn(dev)) == [("mine",)]
