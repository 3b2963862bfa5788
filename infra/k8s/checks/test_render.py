"""render fails on each kind of mistake it is there for (run: python -m unittest in infra/k8s/checks)."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import yaml

from _support import example_values, render_module


class RenderTest(unittest.TestCase):
    def setUp(self):
        self.render = render_module()

    def problems(self, values, manifests=None):
        with self.assertRaises(self.render.RenderError) as caught:
            if manifests is None:
                self.render.render(values)
            else:
                self.render.render(values, manifests)
        return "\n".join(caught.exception.problems)

    def test_the_example_renders_every_template(self):
        outputs = self.render.render(example_values())
        self.assertEqual(set(outputs), {p.name for p in (self.render.MANIFESTS).glob("*.yaml")})
        for text in outputs.values():
            self.assertNotIn("${", text)

    def test_a_missing_value_fails(self):
        values = example_values()
        del values["database_host"]
        self.assertIn("${database_host} has no value", self.problems(values))

    def test_a_value_no_template_uses_fails(self):
        self.assertIn("databse_host: given but no template uses it",
                      self.problems({**example_values(), "databse_host": "x"}))

    def test_terraforms_cors_origins_are_accepted_unused(self):
        values = {**example_values(), "allowed_origins": ["https://a.example.com", "https://b.example.com"]}
        self.render.render(values)

    def test_more_projectors_than_partitions_fails(self):
        self.assertIn("cannot use more members than partitions",
                      self.problems({**example_values(), "projector_replicas": 13, "channel_events_partitions": 12}))

    def test_min_above_max_replicas_fails(self):
        problems = self.problems({**example_values(), "query_api_min_replicas": 5, "query_api_max_replicas": "4"})
        self.assertIn("query_api_min_replicas (5) > query_api_max_replicas (4)", problems)

    def test_a_non_integer_replica_count_fails(self):
        self.assertIn("is not an integer", self.problems({**example_values(), "command_api_max_replicas": "many"}))

    def test_a_value_that_would_break_the_yaml_fails(self):
        self.assertIn("characters not allowed", self.problems({**example_values(), "public_host": 'a"b'}))

    def test_an_empty_required_value_fails(self):
        self.assertIn("image_tag: must not be empty", self.problems({**example_values(), "image_tag": ""}))

    def test_the_waf_annotation_is_omitted_when_empty_and_kept_otherwise(self):
        annotation = "alb.ingress.kubernetes.io/wafv2-acl-arn"
        with_waf = yaml.safe_load(self.render.render(example_values())["30-ingress.yaml"])
        self.assertTrue(with_waf["metadata"]["annotations"][annotation].startswith("arn:aws:wafv2:"))
        without = yaml.safe_load(self.render.render({**example_values(), "waf_acl_arn": ""})["30-ingress.yaml"])
        self.assertNotIn(annotation, without["metadata"]["annotations"])

    def test_the_dashboard_is_embedded_as_json(self):
        import json
        config_map = yaml.safe_load(self.render.render(example_values())["51-grafana-dashboard.yaml"])
        self.assertEqual(json.loads(config_map["data"]["chatsdk.json"])["uid"], "chatsdk-overview")

    def test_kubernetes_dependent_variables_are_left_alone(self):
        query_api = self.render.render(example_values())["21-query-api.yaml"]
        self.assertIn("chatsdk-query-search-$(POD_NAME)", query_api)

    def test_a_malformed_placeholder_fails(self):
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "x.yaml").write_text(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: ${Not-A-Key}\n")
            self.assertIn("invalid placeholder", self.problems({}, Path(directory)))

    def test_output_that_is_not_yaml_fails(self):
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "x.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${a}\n")
            self.assertIn("not valid YAML", self.problems({"a": "x"}, Path(directory)))


if __name__ == "__main__":
    unittest.main()
