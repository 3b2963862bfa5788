# IRSA roles: each is assumable only by one Kubernetes service account through the cluster's OIDC provider.
# The projector, apicurio and pgbouncer service accounts deliberately get no AWS role.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "chatsdk-${var.environment}"
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region

  service_accounts = {
    command-api                  = "system:serviceaccount:${var.namespace}:command-api"
    query-api                    = "system:serviceaccount:${var.namespace}:query-api"
    secrets-reader               = "system:serviceaccount:${var.namespace}:secrets-reader"
    aws-load-balancer-controller = "system:serviceaccount:kube-system:aws-load-balancer-controller"
    external-dns                 = "system:serviceaccount:kube-system:external-dns"
    cluster-autoscaler           = "system:serviceaccount:kube-system:cluster-autoscaler"
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = local.service_accounts

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = [each.value]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.service_accounts

  name                 = "${local.name}-${each.key}"
  description          = "IRSA role of ${each.value}"
  assume_role_policy   = data.aws_iam_policy_document.assume[each.key].json
  max_session_duration = 3600
}

# ---- command-api: presigned PUT (single and multipart), HeadObject/ListObjectsV2 on /complete, DeleteObject of
# refused or abandoned uploads, the multipart sweeper, and the HeadBucket readiness probe (command-api/src/uploads.rs,
# platform/src/s3.rs) ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "command_api" {
  statement {
    sid = "UploadObjects"
    # s3:PutObject covers PutObject, CreateMultipartUpload, UploadPart and CompleteMultipartUpload; s3:GetObject
    # also authorizes HeadObject (there is no separate IAM action).
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.uploads_bucket_arn}/*"]
  }

  statement {
    sid = "ListBucket"
    # ListBucket: ListObjectsV2 and HeadBucket; ListBucketMultipartUploads: the sweeper of abandoned uploads.
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.uploads_bucket_arn]
  }

  statement {
    sid       = "UseUploadsKeyViaS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.uploads_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "command_api" {
  name   = "uploads-write"
  role   = aws_iam_role.this["command-api"].id
  policy = data.aws_iam_policy_document.command_api.json
}

# ---- query-api: presigned GET downloads and the HeadBucket readiness probe -----------------------------------

data "aws_iam_policy_document" "query_api" {
  statement {
    sid       = "ReadObjects"
    actions   = ["s3:GetObject"] # GetObject and HeadObject
    resources = ["${var.uploads_bucket_arn}/*"]
  }

  statement {
    sid       = "HeadBucket"
    actions   = ["s3:ListBucket"] # HeadBucket is authorized by s3:ListBucket
    resources = [var.uploads_bucket_arn]
  }

  statement {
    sid       = "DecryptViaS3"
    actions   = ["kms:Decrypt"]
    resources = [var.uploads_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "query_api" {
  name   = "uploads-read"
  role   = aws_iam_role.this["query-api"].id
  policy = data.aws_iam_policy_document.query_api.json
}

# ---- secrets-reader: the External Secrets Operator SecretStore aws-secrets-manager ---------------------------

data "aws_iam_policy_document" "secrets_reader" {
  statement {
    sid       = "ReadChatSdkSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = var.secret_arns
  }

  statement {
    sid       = "DecryptViaSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "secrets_reader" {
  name   = "read-chatsdk-secrets"
  role   = aws_iam_role.this["secrets-reader"].id
  policy = data.aws_iam_policy_document.secrets_reader.json
}

# ---- external-dns: the Ingress host's alias record (ALB created by the controller) in the one hosted zone -------

data "aws_iam_policy_document" "external_dns" {
  statement {
    sid       = "ChangeRecordsOfTheZone"
    actions   = ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResources"]
    resources = ["arn:${local.partition}:route53:::hostedzone/${var.hosted_zone_id}"]
  }

  statement {
    sid = "FindZones"
    # Listing zones has no resource-level permission.
    actions   = ["route53:ListHostedZones"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "external_dns" {
  name   = "route53-records"
  role   = aws_iam_role.this["external-dns"].id
  policy = data.aws_iam_policy_document.external_dns.json
}

# ---- cluster-autoscaler: resize this cluster's managed node groups (their ASGs carry the auto-discovery tags) ---

data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "Describe"
    # Describe calls have no resource-level permissions.
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeThisClustersNodeGroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${var.cluster_name}/*/*"]
  }

  statement {
    sid       = "ResizeOnlyThisClustersGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "resize-node-groups"
  role   = aws_iam_role.this["cluster-autoscaler"].id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}
