# One customer-managed key for every CloudWatch log group of the environment (flow logs, MSK broker logs,
# EKS control plane, RDS, WAF), so log encryption is one key policy to review instead of five.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "chatsdk-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
}

module "kms" {
  source = "../kms-key"

  alias       = "${local.name}-logs"
  description = "${local.name} CloudWatch Logs encryption"

  additional_policy_statements = [
    {
      # CloudWatch Logs encrypts on behalf of the log group; the condition limits it to this account's groups.
      Sid       = "CloudWatchLogs"
      Effect    = "Allow"
      Principal = { Service = "logs.${local.region}.amazonaws.com" }
      Action = [
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
      ]
      Resource = "*"
      Condition = {
        ArnLike = {
          "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
        }
      }
    },
  ]
}

