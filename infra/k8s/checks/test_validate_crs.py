"""validate_crs fails on each kind of mistake it is there for (run: python -m unittest in infra/k8s/checks)."""

from __future__ import annotations

import copy
import unittest
from pathlib import Path

from _support import render_example, temporary_directory
from validate_crs import documents, validate


class ValidateCrsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.directory = temporary_directory()
        render_example(Path(cls.directory.name))
        cls.found = documents([Path(cls.directory.name)])

    @classmethod
    def tearDownClass(cls):
        cls.directory.cleanup()

    def find(self, kind, name):
        for index, (_, document) in enumerate(self.found):
            if document["kind"] == kind and document["metadata"]["name"] == name:
                return index
        raise AssertionError(f"{kind}/{name} not rendered")

    def problems_with(self, kind, name, change):
        found = copy.deepcopy(self.found)
        index = self.find(kind, name)
        change(found[index][1])
        problems, _ = validate(found)
        return "\n".join(problems)

    def test_the_rendered_example_is_valid(self):
        problems, custom = validate(self.found)
        self.assertEqual(list(problems), [])
        self.assertEqual(custom, 9)  # 1 SecretStore, 5 ExternalSecrets, 3 ServiceMonitors

    def test_an_unknown_custom_kind_fails(self):
        certificate = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                       "metadata": {"name": "x", "namespace": "chatsdk"}, "spec": {}}
        problems, _ = validate(self.found + [("extra.yaml#0", certificate)])
        self.assertIn("unknown kind cert-manager.io/v1 Certificate", "\n".join(problems))

    def test_a_built_in_kind_is_validated_too(self):
        def break_it(deployment):
            deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
        self.assertIn("Deployment/command-api", self.problems_with("Deployment", "command-api", break_it))

    def test_the_v1_template_engine_fails(self):
        def v1(secret):
            secret["spec"]["target"]["template"]["engineVersion"] = "v1"
        self.assertIn("engineVersion", self.problems_with("ExternalSecret", "query-api-config", v1))

    def test_an_unknown_field_fails(self):
        def typo(secret):
            secret["spec"]["data"][0]["remoteRef"]["propery"] = "password"
        self.assertIn("propery", self.problems_with("ExternalSecret", "query-api-config", typo))

    def test_a_remote_ref_without_key_fails(self):
        def no_key(secret):
            del secret["spec"]["data"][0]["remoteRef"]["key"]
        self.assertIn("'key' is a required property", self.problems_with("ExternalSecret", "apicurio-db", no_key))

    def test_a_template_key_that_is_not_fetched_fails(self):
        def missing(secret):
            secret["spec"]["data"] = [d for d in secret["spec"]["data"] if d["secretKey"] != "admin_token"]
        self.assertIn("spec.data does not fetch", self.problems_with("ExternalSecret", "command-api-config", missing))

    def test_a_fetched_key_the_template_never_uses_fails(self):
        def extra(secret):
            secret["spec"]["data"].append({"secretKey": "spare", "remoteRef": {"key": "k", "property": "p"}})
        self.assertIn("'spare' but the template never uses it",
                      self.problems_with("ExternalSecret", "projector-config", extra))

    def test_kafka_properties_as_unquoted_dotted_keys_fail(self):
        def unquoted(secret):
            data = secret["spec"]["target"]["template"]["data"]
            data["secrets.toml"] = data["secrets.toml"].replace('"security.protocol"', "security.protocol")
        self.assertIn('"security.protocol" = "SASL_SSL"',
                      self.problems_with("ExternalSecret", "query-api-config", unquoted))

    def test_a_password_without_quoting_fails(self):
        def raw(secret):
            data = secret["spec"]["target"]["template"]["data"]
            data["secrets.toml"] = data["secrets.toml"].replace(
                "{{ .kafka_password | toJson }}", '"{{ .kafka_password }}"')
        self.assertIn("TOML", self.problems_with("ExternalSecret", "projector-config", raw))

    def test_a_password_not_url_encoded_fails(self):
        def raw(secret):
            data = secret["spec"]["target"]["template"]["data"]
            data["secrets.toml"] = data["secrets.toml"].replace("{{ .db_password | urlquery }}", "{{ .db_password }}")
        # The sample password's quote breaks the TOML string first; without it, its '@' and '/' break the URL.
        self.assertRegex(self.problems_with("ExternalSecret", "command-api-config", raw),
                         r"postgres\.url|does not render to valid TOML")

    def test_a_userlist_without_quote_doubling_fails(self):
        def raw(secret):
            secret["spec"]["target"]["template"]["data"]["userlist.txt"] = \
                '"{{ .db_username }}" "{{ .db_password }}"\n'
        self.assertIn("userlist", self.problems_with("ExternalSecret", "pgbouncer-userlist", raw))

    def test_a_secret_store_that_is_not_rendered_fails(self):
        def elsewhere(secret):
            secret["spec"]["secretStoreRef"]["name"] = "vault"
        self.assertIn("'vault' is not a SecretStore we render",
                      self.problems_with("ExternalSecret", "apicurio-db", elsewhere))

    def test_a_secret_store_account_that_is_not_rendered_fails(self):
        def elsewhere(store):
            store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"] = "nobody"
        self.assertIn("'nobody' is not a ServiceAccount",
                      self.problems_with("SecretStore", "aws-secrets-manager", elsewhere))

    def test_a_service_monitor_on_a_missing_port_fails(self):
        def wrong_port(monitor):
            monitor["spec"]["endpoints"][0]["port"] = "metrics"
        self.assertIn("endpoint port 'metrics'", self.problems_with("ServiceMonitor", "projector", wrong_port))


if __name__ == "__main__":
    unittest.main()
