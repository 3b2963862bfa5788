"""Invariants of the rendered manifests that no schema expresses (run: python -m unittest in infra/k8s/checks).

Each test names what would silently break in the cluster: ALB rule order, query-api's search volume, the
HPA targets, double scraping, probes that would restart a pod catching up, a shutdown cut short by SIGKILL.
"""

from __future__ import annotations

import json
import re
import unittest

import yaml

from _support import example_values, render_module


def rendered_objects() -> list[dict]:
    outputs = render_module().render(example_values())
    return [doc for text in outputs.values() for doc in yaml.safe_load_all(text) if doc is not None]


class ManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = rendered_objects()

    def one(self, kind, name):
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        self.assertEqual(len(found), 1, f"{kind}/{name} rendered {len(found)} times")
        return found[0]

    def container(self, workload, name):
        return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)

    def test_alb_rules_keep_their_order(self):
        # The controller orders Exact, then Prefix (longest first), then ImplementationSpecific paths as listed:
        # only all-ImplementationSpecific paths keep the typing rule ahead of the method rules.
        ingress = self.one("Ingress", "chatsdk")
        annotations = ingress["metadata"]["annotations"]
        paths = ingress["spec"]["rules"][0]["http"]["paths"]
        self.assertEqual({p["pathType"] for p in paths}, {"ImplementationSpecific"})
        self.assertEqual([(p["path"], p["backend"]["service"]["name"]) for p in paths],
                         [("/v1/channels/*/typing", "typing"), ("/*", "reads"), ("/*", "commands")])

        def forwards_to(action):
            config = json.loads(annotations[f"alb.ingress.kubernetes.io/actions.{action}"])
            return [group["serviceName"] for group in config["forwardConfig"]["targetGroups"]]

        self.assertEqual(forwards_to("typing"), ["query-api"])
        self.assertEqual(forwards_to("reads"), ["query-api"])
        self.assertEqual(forwards_to("commands"), ["command-api"])
        self.assertNotIn("alb.ingress.kubernetes.io/conditions.typing", annotations)  # any method
        reads = json.loads(annotations["alb.ingress.kubernetes.io/conditions.reads"])
        self.assertEqual(reads, [{"field": "http-request-method",
                                  "httpRequestMethodConfig": {"Values": ["GET", "HEAD"]}}])
        self.assertEqual(annotations["external-dns.alpha.kubernetes.io/hostname"],
                         ingress["spec"]["rules"][0]["host"])

    def test_query_api_keeps_its_index_on_a_volume(self):
        statefulset = self.one("StatefulSet", "query-api")
        spec = statefulset["spec"]
        self.assertEqual(spec["podManagementPolicy"], "Parallel")
        self.assertEqual(spec["persistentVolumeClaimRetentionPolicy"],
                         {"whenDeleted": "Retain", "whenScaled": "Retain"})
        headless = self.one("Service", spec["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        claims = {claim["metadata"]["name"]: claim for claim in spec["volumeClaimTemplates"]}
        storage_class = self.one("StorageClass", claims["search"]["spec"]["storageClassName"])
        self.assertEqual(storage_class["volumeBindingMode"], "WaitForFirstConsumer")  # EBS volumes are zonal
        pod = spec["template"]["spec"]
        self.assertNotIn("search", {volume["name"] for volume in pod["volumes"]})  # no emptyDir shadowing the claim
        self.assertEqual(pod["securityContext"]["fsGroup"], pod["securityContext"]["runAsUser"])
        container = self.container(statefulset, "query-api")
        mount = next(m for m in container["volumeMounts"] if m["name"] == "search")
        env = {e["name"]: e.get("value") for e in container["env"]}
        # The index directory and its writer's lock file ({index_dir}.lock) are both on the volume.
        self.assertEqual(env["CHATSDK_SEARCH__INDEX_DIR"].rsplit("/", 1)[0], mount["mountPath"])
        self.assertNotIn("ephemeral-storage", container["resources"].get("limits", {}))

    def test_query_api_catching_up_is_never_restarted(self):
        # /readyz waits for the search catch-up (any length); startup and liveness must not.
        container = self.container(self.one("StatefulSet", "query-api"), "query-api")
        self.assertEqual(container["startupProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(container["readinessProbe"]["httpGet"]["path"], "/readyz")

    def test_hpas_target_rendered_workloads(self):
        for hpa in (o for o in self.objects if o["kind"] == "HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]
            self.one(target["kind"], target["name"])

    def test_no_pod_is_scraped_twice(self):
        # Two Services selecting the same pods under one ServiceMonitor would double every per-pod sum.
        services = [o for o in self.objects if o["kind"] == "Service"]
        for monitor in (o for o in self.objects if o["kind"] == "ServiceMonitor"):
            wanted = monitor["spec"]["selector"]["matchLabels"].items()
            selected = [s["metadata"]["name"] for s in services if wanted <= s["metadata"].get("labels", {}).items()]
            self.assertEqual(len(selected), 1, f"ServiceMonitor/{monitor['metadata']['name']} selects {selected}")

    def test_pgbouncer_shutdown_fits_its_grace_period(self):
        deployment = self.one("Deployment", "pgbouncer")
        hook = " ".join(self.container(deployment, "pgbouncer")["lifecycle"]["preStop"]["exec"]["command"])
        self.assertIn("kill -INT 1", hook)  # SIGINT: safe shutdown; SIGTERM (>= 1.23) waits for every client
        sleeps = sum(int(seconds) for seconds in re.findall(r"sleep (\d+)", hook))
        self.assertLess(sleeps + 5, deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


if __name__ == "__main__":
    unittest.main()
