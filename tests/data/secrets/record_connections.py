"""Records how Airflow 3.3.2 parses and writes connection URIs and JSON, as test data:
``/tmp/afvenv/bin/python tests/data/secrets/record_connections.py > tests/data/secrets/connections_airflow_3_3_2.json``."""

import json

from airflow.sdk import Connection

URIS = [
    "postgres://user:p%40ss@db.example.com:5432/mydb?sslmode=require",
    "postgresql://u:pw@localhost/db",
    "mysql://root@127.0.0.1:3306/test",
    "sqlite:///%2Ftmp%2Fx.db",
    "http://https%3A%2F%2Fapi.example.com",
    "http://https://host.com/path",
    "my-conn-type://login:password@protocol%3A%2F%2Fhost:1234/schema?__extra__=%7B%22a%22%3A+%5B1%5D%7D",
    "smtp://me%40example.com:secret@smtp.example.com:587?disable_ssl=true",
    "aws://?region_name=eu-west-1&aws_access_key_id=AKIA",
    "slackwebhook://:T000%2FB000%2FXXX@hooks.slack.com%2Fservices",
    "spark://@:7077",
]
FIELDS = ["conn_type", "host", "login", "password", "schema", "port", "extra"]
out = {"uri": [], "json": []}
for uri in URIS:
    c = Connection.from_uri(uri, conn_id="x")
    out["uri"].append({"uri": uri, "fields": {f: getattr(c, f) for f in FIELDS}, "get_uri": c.get_uri()})
for obj in [
    {"conn_type": "postgres", "host": "h", "login": "u", "password": "p", "port": "5432", "schema": "s"},
    {"conn_type": "http", "host": "example.com", "extra": {"headers": {"X": "1"}, "n": 2}},
    {"conn_type": "fs", "extra": '{"path": "/data"}'},
]:
    c = Connection.from_json(json.dumps(obj), conn_id="x")
    out["json"].append(
        {
            "json": obj,
            "fields": {f: getattr(c, f) for f in FIELDS},
            "as_json": json.loads(c.as_json()),
            "get_uri": c.get_uri(),
        }
    )
print(json.dumps(out, indent=1))
