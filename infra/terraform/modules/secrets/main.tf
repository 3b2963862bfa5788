# The one CMK for the three ChatSDK secrets (MSK SCRAM, database roles, admin token): the secrets-reader role
# (External Secrets Operator) gets kms:Decrypt on exactly this key. Also creates the admin-token secret, which
# belongs to no other module.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name = "chatsdk-${var.environment}"
}

resource "aws_kms_key" "secrets" {
  description             = "${local.name} application secrets (Secrets Manager)"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # Account-level delegation only: Secrets Manager and MSK use the key through grants made with the caller's
  # IAM permissions, and readers are granted kms:Decrypt by IAM policy (service-roles module).
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${local.name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "admin_token" {
  #checkov:skip=CKV2_AWS_57:A static bearer token cannot rotate without a rotation Lambda and a coordinated rollout; rotate by replacing random_password.admin_token.
  name        = "chatsdk/${var.environment}/admin-token"
  description = "command-api [auth] admin_token"
  kms_key_id  = aws_kms_key.secrets.arn
}

resource "aws_secretsmanager_secret_version" "admin_token" {
  secret_id     = aws_secretsmanager_secret.admin_token.id
  secret_string = jsonencode({ token = random_password.admin_token.result })
}
