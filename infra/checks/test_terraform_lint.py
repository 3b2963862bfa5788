"""The terraform lint fails on each kind of mistake it is there for (run: python -m unittest in infra/checks)."""

from __future__ import annotations

import tempfile
import textwrap
import unittest
from pathlib import Path

from terraform_lint import lint

GOOD_MODULE = """
variable "name" {
  type        = string
  description = "What to call it."
}
variable "size" {
  type        = number
  description = "How big."
  default     = 1
}
output "id" {
  value = var.name
}
"""

GOOD_ENVIRONMENT = """
variable "region" {
  type        = string
  description = "AWS region."
}
module "thing" {
  source = "../../modules/thing"
  name   = var.region
}
output "thing_id" {
  value = module.thing.id
}
"""


class TerraformLintTest(unittest.TestCase):
    def tree(self, module: str = GOOD_MODULE, environment: str = GOOD_ENVIRONMENT, extra: dict | None = None) -> Path:
        root = Path(tempfile.mkdtemp()) / "terraform"
        files = {"modules/thing/main.tf": module, "environments/prod/main.tf": environment,
                 "environments/staging/main.tf": environment}
        files.update(extra or {})
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return root

    def assert_finds(self, root: Path, fragment: str) -> None:
        errors = lint(root)
        self.assertTrue(any(fragment in error for error in errors), f"{fragment!r} not in {errors}")

    def test_a_good_tree_passes(self) -> None:
        self.assertEqual(lint(self.tree()), [])

    def test_a_file_that_does_not_parse_fails(self) -> None:
        self.assert_finds(self.tree(extra={"modules/thing/broken.tf": 'resource "x" {\n'}), "does not parse")

    def test_a_variable_without_description_fails(self) -> None:
        module = GOOD_MODULE.replace('  description = "How big."\n', "")
        self.assert_finds(self.tree(module=module), "variable size has no description")

    def test_a_variable_without_type_fails(self) -> None:
        module = GOOD_MODULE.replace("  type        = number\n", "")
        self.assert_finds(self.tree(module=module), "variable size has no type")

    def test_a_secret_with_a_default_fails(self) -> None:
        secret = 'variable "db_password" {\n  type = string\n  description = "x"\n  default = "hunter2"\n}\n'
        self.assert_finds(self.tree(extra={"modules/thing/secret.tf": secret}), "must not have a default")
        self.assert_finds(self.tree(extra={"modules/thing/secret.tf": secret}), "must be `sensitive = true`")

    def test_a_reference_to_a_secret_is_not_a_secret(self) -> None:
        reference = 'variable "admin_token_secret_name" {\n  type = string\n  description = "x"\n  default = "a/b"\n}\n'
        self.assertEqual(lint(self.tree(extra={"modules/thing/reference.tf": reference})), [])

    def test_an_unused_module_fails(self) -> None:
        self.assert_finds(self.tree(extra={"modules/orphan/main.tf": GOOD_MODULE}), "not used by any composition")

    def test_a_module_missing_from_one_environment_fails(self) -> None:
        staging = 'variable "region" {\n  type = string\n  description = "x"\n}\n'
        self.assert_finds(self.tree(extra={"environments/staging/main.tf": staging}),
                          "not used by environment staging")

    def test_an_argument_the_module_does_not_declare_fails(self) -> None:
        environment = GOOD_ENVIRONMENT.replace("name   = var.region", "name   = var.region\n  colour = 1")
        self.assert_finds(self.tree(environment=environment), "has no variable colour")

    def test_a_missing_required_argument_fails(self) -> None:
        environment = GOOD_ENVIRONMENT.replace("  name   = var.region\n", "")
        self.assert_finds(self.tree(environment=environment), "required variable name not given")

    def test_an_undeclared_variable_reference_fails(self) -> None:
        environment = GOOD_ENVIRONMENT.replace("name   = var.region", "name   = var.regoin")
        self.assert_finds(self.tree(environment=environment), "var.regoin is not a variable")

    def test_a_missing_module_output_fails(self) -> None:
        environment = GOOD_ENVIRONMENT.replace("module.thing.id", "module.thing.arn")
        self.assert_finds(self.tree(environment=environment), "has no output arn")

    def test_a_checkov_skip_without_reason_fails(self) -> None:
        resource = 'resource "aws_s3_bucket" "b" {\n  #checkov:skip=CKV_AWS_18\n  bucket = "b"\n}\n'
        self.assert_finds(self.tree(extra={"modules/thing/bucket.tf": resource}), "without a reason")


if __name__ == "__main__":
    unittest.main()
