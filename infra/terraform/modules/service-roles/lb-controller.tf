# aws-load-balancer-controller policy: the upstream docs/install/iam_policy.json, condensed, with resources scoped to
# this account and region (and security group creation to this VPC). Mutations are limited by the tags the
# controller puts on what it creates (elbv2.k8s.aws/cluster). Read-only Describe/Get calls cannot be scoped.
# Left out because ChatSDK does not use them: Shield Advanced protections, Cognito auth, IAM server certificates
# (certificates come from ACM) and Outposts customer-owned IP pools.

locals {
  ec2_prefix      = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
  elb_prefix      = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}"
  security_groups = "${local.ec2_prefix}:security-group/*"
  load_balancers = [
    "${local.elb_prefix}:loadbalancer/app/*/*",
    "${local.elb_prefix}:loadbalancer/net/*/*",
    "${local.elb_prefix}:targetgroup/*/*",
  ]
  listeners = [
    "${local.elb_prefix}:listener/app/*/*/*",
    "${local.elb_prefix}:listener/net/*/*/*",
    "${local.elb_prefix}:listener-rule/app/*/*/*",
    "${local.elb_prefix}:listener-rule/net/*/*/*",
  ]
  cluster_tag = "elbv2.k8s.aws/cluster"
}

data "aws_iam_policy_document" "lb_controller" {
  statement {
    sid       = "ElbServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/elasticloadbalancing.amazonaws.com/*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }

  statement {
    sid = "Discovery"
    actions = [
      "ec2:DescribeAccountAttributes",
      "ec2:DescribeAddresses",
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInternetGateways",
      "ec2:DescribeVpcs",
      "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeTags",
      "ec2:DescribeRouteTables",
      "ec2:DescribeCoipPools",
      "ec2:DescribeIpamPools",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeLoadBalancerAttributes",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeListenerAttributes",
      "elasticloadbalancing:DescribeListenerCertificates",
      "elasticloadbalancing:DescribeSSLPolicies",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTrustStores",
      "elasticloadbalancing:DescribeCapacityReservation",
      "acm:ListCertificates",
      # Only tells the controller the account has no Shield Advanced, after which it skips Shield entirely.
      "shield:GetSubscriptionState",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "SecurityGroupsOfVpc"
    actions   = ["ec2:GetSecurityGroupsForVpc"]
    resources = ["${local.ec2_prefix}:vpc/${var.vpc_id}"]
  }

  statement {
    sid       = "Certificates"
    actions   = ["acm:DescribeCertificate"]
    resources = ["arn:${local.partition}:acm:${local.region}:${local.account_id}:certificate/*"]
  }

  # The controller reconciles WAF associations of its ALBs (wafv2-acl-arn annotation; classic WAF is only read).
  statement {
    sid = "WafLookup"
    actions = [
      "wafv2:GetWebACL",
      "wafv2:GetWebACLForResource",
      "waf-regional:GetWebACL",
      "waf-regional:GetWebACLForResource",
    ]
    resources = [
      "arn:${local.partition}:wafv2:${local.region}:${local.account_id}:regional/webacl/*",
      "arn:${local.partition}:waf-regional:${local.region}:${local.account_id}:webacl/*",
      "${local.elb_prefix}:loadbalancer/app/*/*",
    ]
  }

  statement {
    sid     = "WafAssociation"
    actions = ["wafv2:AssociateWebACL", "wafv2:DisassociateWebACL"]
    resources = [
      "arn:${local.partition}:wafv2:${local.region}:${local.account_id}:regional/webacl/*",
      "${local.elb_prefix}:loadbalancer/app/*/*",
    ]
  }

  statement {
    sid       = "NodeSecurityGroupRules"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = [local.security_groups]
  }

  statement {
    sid       = "CreateSecurityGroupInVpc"
    actions   = ["ec2:CreateSecurityGroup"]
    resources = ["${local.ec2_prefix}:vpc/${var.vpc_id}", local.security_groups]
  }

  statement {
    sid       = "TagNewSecurityGroup"
    actions   = ["ec2:CreateTags"]
    resources = [local.security_groups]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateSecurityGroup"]
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "RetagOwnSecurityGroups"
    actions   = ["ec2:CreateTags", "ec2:DeleteTags"]
    resources = [local.security_groups]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["true"]
    }

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "ManageOwnSecurityGroups"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"]
    resources = [local.security_groups]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CreateTaggedLoadBalancers"
    actions   = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]
    resources = local.load_balancers

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid = "ListenersAndRules"
    actions = [
      "elasticloadbalancing:CreateListener",
      "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:CreateRule",
      "elasticloadbalancing:DeleteRule",
    ]
    resources = concat(local.load_balancers, local.listeners)
  }

  statement {
    sid       = "RetagOwnLoadBalancers"
    actions   = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    resources = local.load_balancers

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["true"]
    }

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "TagListeners"
    actions   = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    resources = local.listeners
  }

  statement {
    sid       = "TagOnCreate"
    actions   = ["elasticloadbalancing:AddTags"]
    resources = local.load_balancers

    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateTargetGroup", "CreateLoadBalancer"]
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid = "ManageOwnLoadBalancers"
    actions = [
      "elasticloadbalancing:ModifyLoadBalancerAttributes",
      "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups",
      "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer",
      "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes",
      "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyCapacityReservation",
      "elasticloadbalancing:ModifyIpPools",
    ]
    resources = local.load_balancers

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "Targets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = ["${local.elb_prefix}:targetgroup/*/*"]
  }

  statement {
    sid = "ListenerSettings"
    actions = [
      "elasticloadbalancing:SetWebAcl",
      "elasticloadbalancing:ModifyListener",
      "elasticloadbalancing:AddListenerCertificates",
      "elasticloadbalancing:RemoveListenerCertificates",
      "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:SetRulePriorities",
      "elasticloadbalancing:ModifyListenerAttributes",
    ]
    resources = concat(local.load_balancers, local.listeners)
  }
}

# Inline (10,240 characters) rather than managed (6,144): the document is long.
resource "aws_iam_role_policy" "lb_controller" {
  name   = "aws-load-balancer-controller"
  role   = aws_iam_role.this["aws-load-balancer-controller"].id
  policy = data.aws_iam_policy_document.lb_controller.json
}
