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


# A composition module that calls thing, and environments that use thing only through it.
WRAPPER_MODULE = """
variable "label" {
  type        = string
  description = "Passed on."
}
module "thing" {
  source = "../thing"
  name   = var.label
}
output "thing_id" {
  value = module.thing.id
}
"""

WRAPPED_ENVIRONMENT = """
variable "region" {
  type        = string
  description = "AWS region."
}
module "wrapper" {
  source = "../../modules/wrapper"
  label  = var.region
}
moved {
  from = module.thing
  to   = module.wrapper.module.thing
}
output "thing_id" {
  value = module.wrapper.thing_id
}
"""


# A stage-2 root (environments/<env>/stage2) calling a module that no stage-1 root uses.
STAGE2_ROOT = """
variable "region" {
  type        = string
  description = "AWS region."
}
module "data" {
  source = "../../../modules/data"
  name   = var.region
}
output "data_id" {
  value = module.data.id
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

    def wrapped(self, wrapper: str = WRAPPER_MODULE, environment: str = WRAPPED_ENVIRONMENT,
                extra: dict | None = None) -> Path:
        return self.tree(environment=environment, extra={"modules/wrapper/main.tf": wrapper, **(extra or {})})

    def test_a_module_used_only_through_another_module_passes(self) -> None:
        self.assertEqual(lint(self.wrapped()), [])

    def test_with_a_wrapper_a_module_used_by_nothing_still_fails(self) -> None:
        self.assert_finds(self.wrapped(extra={"modules/orphan/main.tf": GOOD_MODULE}), "not used by any composition")

    def test_a_module_used_only_by_a_module_no_environment_uses_fails(self) -> None:
        # thing is called by wrapper, but the environments call thing's caller nowhere: thing is unused there.
        environment = 'variable "region" {\n  type = string\n  description = "x"\n}\n'
        root = self.wrapped(environment=environment)
        self.assert_finds(root, "modules/thing: module is not used by environment prod")
        self.assert_finds(root, "modules/wrapper: module is not used by environment staging")

    def test_a_module_missing_from_one_environment_even_through_a_wrapper_fails(self) -> None:
        staging = 'variable "region" {\n  type = string\n  description = "x"\n}\n'
        root = self.wrapped(extra={"environments/staging/main.tf": staging})
        self.assert_finds(root, "modules/thing: module is not used by environment staging")

    def test_a_call_inside_a_module_is_checked_like_one_in_an_environment(self) -> None:
        wrapper = WRAPPER_MODULE.replace("name   = var.label", "name   = var.label\n  colour = 1")
        self.assert_finds(self.wrapped(wrapper=wrapper), "has no variable colour")
        self.assert_finds(self.wrapped(wrapper=WRAPPER_MODULE.replace("  name   = var.label\n", "")),
                          "required variable name not given")
        self.assert_finds(self.wrapped(wrapper=WRAPPER_MODULE.replace("module.thing.id", "module.thing.arn")),
                          "has no output arn")
        self.assert_finds(self.wrapped(wrapper=WRAPPER_MODULE.replace("var.label", "var.lable")),
                          "var.lable is not a variable of wrapper")

    def test_a_reference_to_a_module_that_is_not_called_fails(self) -> None:
        environment = WRAPPED_ENVIRONMENT.replace("label  = var.region",
                                                  "label  = var.region\n  depends_on = [module.wraper]")
        self.assert_finds(self.wrapped(environment=environment), "module.wraper is not called")

    def test_a_moved_block_to_a_module_that_does_not_exist_fails(self) -> None:
        environment = WRAPPED_ENVIRONMENT.replace("module.wrapper.module.thing", "module.wrapper.module.thingy")
        self.assert_finds(self.wrapped(environment=environment), "no module thingy is called in wrapper")

    def test_a_moved_block_from_a_module_still_called_fails(self) -> None:
        environment = WRAPPED_ENVIRONMENT + 'module "thing" {\n  source = "../../modules/thing"\n  name   = "x"\n}\n'
        self.assert_finds(self.wrapped(environment=environment), "module thing is still called")

    def staged(self, prod: str = STAGE2_ROOT, staging: str | None = STAGE2_ROOT, extra: dict | None = None) -> Path:
        files = {"modules/data/main.tf": GOOD_MODULE, "environments/prod/stage2/main.tf": prod}
        if staging is not None:
            files["environments/staging/stage2/main.tf"] = staging
        return self.tree(extra={**files, **(extra or {})})

    def test_a_module_used_only_by_the_stage_2_roots_passes(self) -> None:
        # An environment is its stage-1 and its stage-2 root together: data is used by both environments.
        self.assertEqual(lint(self.staged()), [])

    def test_a_module_missing_from_one_environments_stage_2_root_fails(self) -> None:
        root = self.staged(staging=None)
        self.assert_finds(root, "modules/data: module is not used by environment staging")
        self.assertFalse(any("environment prod" in error for error in lint(root)), lint(root))

    def test_a_module_used_by_stage_1_here_and_stage_2_there_passes(self) -> None:
        # prod calls data from stage 2, staging from stage 1: each environment still uses it.
        staging = GOOD_ENVIRONMENT + 'module "data" {\n  source = "../../modules/data"\n  name   = "x"\n}\n'
        self.assertEqual(lint(self.staged(staging=None, extra={"environments/staging/main.tf": staging})), [])

    def test_a_call_in_a_stage_2_root_is_checked_like_one_in_stage_1(self) -> None:
        extra_argument = STAGE2_ROOT.replace("name   = var.region", "name   = var.region\n  colour = 1")
        self.assert_finds(self.staged(prod=extra_argument), "has no variable colour")
        self.assert_finds(self.staged(prod=STAGE2_ROOT.replace("module.data.id", "module.data.arn")),
                          "data has no output arn")
        self.assert_finds(self.staged(prod=STAGE2_ROOT.replace("var.region", "var.regoin")),
                          "var.regoin is not a variable of prod/stage2")

    def test_a_stage_2_root_without_a_stage_1_root_fails(self) -> None:
        self.assert_finds(self.staged(extra={"environments/dev/stage2/main.tf": STAGE2_ROOT}),
                          "stage-2 root without a stage-1 root")

    def test_tf_files_elsewhere_under_environments_fail(self) -> None:
        self.assert_finds(self.tree(extra={"environments/prod/stage3/main.tf": GOOD_ENVIRONMENT}), "that are no root")

    def test_a_checkov_skip_without_reason_fails(self) -> None:
        resource = 'resource "aws_s3_bucket" "b" {\n  #checkov:skip=CKV_AWS_18\n  bucket = "b"\n}\n'
        self.assert_finds(self.tree(extra={"modules/thing/bucket.tf": resource}), "without a reason")


if __name__ == "__main__":
    unittest.main()
