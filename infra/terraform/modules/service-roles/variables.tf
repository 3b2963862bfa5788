variable "environment" {
  type        = string
  description = "Environment name (prod, staging); roles are named chatsdk-<environment>-<service account>."
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the ChatSDK service accounts."
  default     = "chatsdk"
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster's IAM OIDC provider."
}

variable "oidc_issuer" {
  type        = string
  description = "OIDC issuer without https:// (condition key prefix)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cluster; the load balancer controller may only create security groups there."
}

variable "uploads_bucket_arn" {
  type        = string
  description = "ARN of the uploads bucket."
}

variable "uploads_kms_key_arn" {
  type        = string
  description = "ARN of the uploads bucket's CMK."
}

variable "secret_arns" {
  type        = list(string)
  description = "ARNs of exactly the three ChatSDK secrets (MSK SCRAM, database, admin token) the secrets-reader may read."

  validation {
    condition     = length(var.secret_arns) == 3
    error_message = "secrets-reader reads exactly the three ChatSDK secrets."
  }
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "ARN of the CMK of the ChatSDK secrets."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 hosted zone of the public host: the only zone external-dns may change."
}

variable "cluster_name" {
  type        = string
  description = "EKS cluster name: cluster-autoscaler may resize only the node groups tagged as owned by it."
}
