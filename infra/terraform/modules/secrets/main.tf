# The one CMK for the three ChatSDK secrets (MSK SCRAM, database roles, admin token): the secrets-reader role
# (External Secrets Operator) gets kms:Decrypt on exactly this key. Also creates the admin-token secret, which
# belongs to no other module.

locals {
  name = "chatsdk-${var.environment}"
}

module "kms" {
  source = "../kms-key"

  alias       = "${local.name}-secrets"
  description = "${local.name} application secrets (Secrets Manager)"
}

resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "admin_token" {
  #checkov:skip=CKV2_AWS_57:A static bearer token cannot rotate without a rotation Lambda and a coordinated rollout; rotate by replacing random_password.admin_token.
  name        = "chatsdk/${var.environment}/admin-token"
  description = "command-api [auth] admin_token"
  kms_key_id  = module.kms.arn
}

resource "aws_secretsmanager_secret_version" "admin_token" {
  secret_id     = aws_secretsmanager_secret.admin_token.id
  secret_string = jsonencode({ token = random_password.admin_token.result })
}
