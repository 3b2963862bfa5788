data "aws_partition" "current" {}

locals {
  name      = "chatsdk-${var.environment}"
  partition = data.aws_partition.current.partition
  # Issuer without the scheme, as IRSA trust-policy condition keys spell it.
  oidc_issuer = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

# ---- envelope encryption of Kubernetes secrets ---------------------------------------------------------------

module "kms" {
  source = "../kms-key"

  alias       = "${local.name}-eks"
  description = "${local.name} EKS secrets envelope encryption"
}

# ---- control plane -------------------------------------------------------------------------------------------

# Created before the cluster so EKS does not create it without retention or encryption.
resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${local.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${local.name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

data "aws_iam_policy_document" "cluster_kms" {
  statement {
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]
    resources = [module.kms.arn]
  }
}

resource "aws_iam_role_policy" "cluster_kms" {
  name   = "secrets-envelope-encryption"
  role   = aws_iam_role.cluster.id
  policy = data.aws_iam_policy_document.cluster_kms.json
}

resource "aws_eks_cluster" "this" {
  name     = local.name
  role_arn = aws_iam_role.cluster.arn
  version  = var.kubernetes_version

  # vpc-cni, kube-proxy and coredns are installed below as managed add-ons instead of the unmanaged defaults.
  bootstrap_self_managed_addons = false

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.public_access_cidrs : null
  }

  access_config {
    authentication_mode = "API"
    # Every admin is an explicit access entry (cluster_admin_principal_arns, which must include the role running
    # terraform): a bootstrapped creator entry would collide with it (ResourceInUseException).
    bootstrap_cluster_creator_admin_permissions = false
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = module.kms.arn
    }
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  depends_on = [
    aws_cloudwatch_log_group.cluster,
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_kms,
  ]
}

# IRSA: service accounts exchange their projected token for IAM role credentials.
resource "aws_iam_openid_connect_provider" "this" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
  # No thumbprint_list: IAM trusts the EKS OIDC issuer's CA itself and ignores thumbprints for it.
}

resource "aws_eks_access_entry" "admin" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admin]
}

# ---- IRSA roles of the add-ons (kept off the node role so pods cannot borrow them) ---------------------------

locals {
  addon_service_accounts = {
    vpc-cni = {
      service_account = "system:serviceaccount:kube-system:aws-node"
      policy_arn      = "arn:${local.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"
    }
    aws-ebs-csi-driver = {
      service_account = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
      policy_arn      = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    }
  }
}

data "aws_iam_policy_document" "addon_assume" {
  for_each = local.addon_service_accounts

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.this.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = [each.value.service_account]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "addon" {
  for_each = local.addon_service_accounts

  name               = "${local.name}-addon-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.addon_assume[each.key].json
}

resource "aws_iam_role_policy_attachment" "addon" {
  for_each = local.addon_service_accounts

  role       = aws_iam_role.addon[each.key].name
  policy_arn = each.value.policy_arn
}

# ---- nodes ---------------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${local.name}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    # Session Manager instead of SSH; also the way to port-forward to RDS for stage 2.
    "AmazonSSMManagedInstanceCore",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_launch_template" "node" {
  name_prefix            = "${local.name}-node-"
  description            = "EKS nodes of ${local.name}: IMDSv2 only, encrypted gp3 root volume"
  update_default_version = true

  # IMDSv2 required, and a hop limit of 1 keeps pods (one hop further) away from the node role's credentials;
  # workloads get AWS access only through IRSA.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.node_disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${local.name}-node" }
  }
}

locals {
  base_node_groups = merge(
    {
      on-demand = {
        capacity_type  = "ON_DEMAND"
        instance_types = var.on_demand_instance_types
        min_size       = var.on_demand_min_size
        desired_size   = var.on_demand_desired_size
        max_size       = var.on_demand_max_size
      }
    },
    var.spot_enabled ? {
      spot = {
        capacity_type  = "SPOT"
        instance_types = var.spot_instance_types
        min_size       = var.spot_min_size
        desired_size   = var.spot_desired_size
        max_size       = var.spot_max_size
      }
    } : {},
  )

  # One node group per AZ and capacity type: a pod bound to an EBS volume (query-api's search index) can only run
  # in its volume's AZ, and cluster-autoscaler can only add a node in a chosen AZ when each group has one AZ.
  # Sizes are per AZ.
  node_groups = merge([
    for name, group in local.base_node_groups : {
      for index, subnet_id in var.private_subnet_ids : "${name}-${index + 1}" => merge(group, {
        subnet_ids = [subnet_id]
      })
    }
  ]...)
}

resource "aws_eks_node_group" "this" {
  for_each = local.node_groups

  cluster_name    = aws_eks_cluster.this.name
  node_group_name = each.key
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = each.value.subnet_ids
  version         = aws_eks_cluster.this.version
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = each.value.capacity_type
  instance_types  = each.value.instance_types

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  scaling_config {
    min_size     = each.value.min_size
    desired_size = each.value.desired_size
    max_size     = each.value.max_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    "chatsdk.io/capacity" = lower(each.value.capacity_type)
  }

  lifecycle {
    # The cluster autoscaler owns desired_size after creation.
    ignore_changes = [scaling_config[0].desired_size]
  }

  # Nodes only become Ready once the CNI runs, so the networking add-ons come first.
  depends_on = [
    aws_iam_role_policy_attachment.node,
    aws_eks_addon.before_nodes,
  ]
}

# ---- add-ons -------------------------------------------------------------------------------------------------

# DaemonSets that nodes need to join: installed before the node groups.
resource "aws_eks_addon" "before_nodes" {
  for_each = toset(["vpc-cni", "kube-proxy"])

  cluster_name             = aws_eks_cluster.this.name
  addon_name               = each.value
  service_account_role_arn = each.value == "vpc-cni" ? aws_iam_role.addon["vpc-cni"].arn : null
  # infra/k8s relies on NetworkPolicies: the VPC CNI enforces them only when asked to.
  configuration_values        = each.value == "vpc-cni" ? jsonencode({ enableNetworkPolicy = "true" }) : null
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

# Deployments that need schedulable nodes to become healthy: installed after the node groups.
resource "aws_eks_addon" "after_nodes" {
  for_each = toset(["coredns", "aws-ebs-csi-driver"])

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.value
  service_account_role_arn    = each.value == "aws-ebs-csi-driver" ? aws_iam_role.addon["aws-ebs-csi-driver"].arn : null
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  depends_on = [aws_eks_node_group.this]
}
