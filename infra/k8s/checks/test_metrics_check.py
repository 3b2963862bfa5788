"""metrics_check fails on each kind of mistake it is there for (run: python -m unittest in infra/k8s/checks)."""

from __future__ import annotations

import copy
import json
import unittest
from pathlib import Path

import yaml

from _support import render_example, temporary_directory
from metrics_check import ADAPTER, DASHBOARD, METRICS_RS, run


class MetricsCheckTest(unittest.TestCase):
    def setUp(self):
        self.directory = temporary_directory()
        self.out = Path(self.directory.name)
        render_example(self.out)
        self.source = METRICS_RS.read_text(encoding="utf-8")
        self.adapter = yaml.safe_load(ADAPTER.read_text(encoding="utf-8"))
        self.dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    def tearDown(self):
        self.directory.cleanup()

    def problems(self, source=None, adapter=None, dashboard=None):
        problems, _ = run(self.out, source or self.source, adapter or self.adapter, dashboard or self.dashboard)
        return "\n".join(problems)

    def test_the_real_files_pass(self):
        self.assertEqual(self.problems(), "")

    def test_an_unknown_metric_in_the_dashboard_fails(self):
        dashboard = copy.deepcopy(self.dashboard)
        dashboard["panels"][1]["targets"][0]["expr"] = "sum(rate(chatsdk_http_request_total[5m]))"
        self.assertIn("chatsdk_http_request_total", self.problems(dashboard=dashboard))

    def test_histogram_series_are_derived_names(self):
        dashboard = copy.deepcopy(self.dashboard)
        dashboard["panels"][1]["targets"][0]["expr"] = \
            "sum(rate(chatsdk_projector_batch_duration_seconds_count[5m]))"
        self.assertEqual(self.problems(dashboard=dashboard), "")

    def test_a_metric_removed_from_the_code_fails(self):
        source = self.source.replace('"chatsdk_query_ws_connections"', '"chatsdk_query_ws_sockets"')
        problems = self.problems(source=source)
        self.assertIn("chatsdk_query_ws_connections", problems)
        self.assertIn("seriesQuery", problems)

    def test_an_adapter_name_not_derived_from_its_series_fails(self):
        adapter = copy.deepcopy(self.adapter)
        adapter["rules"]["custom"][0]["name"]["as"] = "chatsdk_http_rps"
        self.assertIn("exposes chatsdk_http_rps", self.problems(adapter=adapter))

    def test_an_hpa_metric_the_adapter_does_not_expose_fails(self):
        path = self.out / "20-command-api.yaml"
        path.write_text(path.read_text().replace(
            "name: chatsdk_http_requests_per_second", "name: chatsdk_http_requests_total"))
        self.assertIn("is not one prometheus-adapter exposes", self.problems())

    def test_a_placeholder_left_after_rendering_fails(self):
        path = self.out / "00-namespace.yaml"
        path.write_text(path.read_text() + "# ${environment}\n")
        self.assertIn("${environment} left after rendering", self.problems())

    def test_a_stale_metric_name_in_a_comment_fails(self):
        path = self.out / "21-query-api.yaml"
        path.write_text(path.read_text() + "# scales on chatsdk_ws_open\n")
        self.assertIn("chatsdk_ws_open", self.problems())


if __name__ == "__main__":
    unittest.main()
