variable "environment" {
  type        = string
  description = "Environment name (prod, staging); the cluster is named chatsdk-<environment>."
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version (the k8s manifests are validated against 1.33)."
  default     = "1.33"
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets (one per AZ) for the control-plane ENIs and the nodes."
}

variable "endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API endpoint publicly (restricted to public_access_cidrs). Off: reach it from inside the VPC."
  default     = false
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public API endpoint when endpoint_public_access is true; never 0.0.0.0/0."
  default     = []

  validation {
    condition     = !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "Do not open the API endpoint to the whole internet."
  }

  validation {
    condition     = !var.endpoint_public_access || length(var.public_access_cidrs) > 0
    error_message = "endpoint_public_access needs at least one CIDR in public_access_cidrs."
  }
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM role/user ARNs given cluster-admin through EKS access entries. Include the role that runs terraform: the creator gets no implicit entry."

  validation {
    condition     = length(var.cluster_admin_principal_arns) > 0
    error_message = "List at least one admin (the role that runs terraform), or nobody can reach the cluster."
  }
}

variable "on_demand_instance_types" {
  type        = list(string)
  description = "Instance types of the on-demand node group (x86_64, AL2023)."
  default     = ["m6i.large"]
}

variable "on_demand_min_size" {
  type        = number
  description = "Minimum on-demand nodes per AZ; at least one per AZ keeps the baseline (projectors, registry, PgBouncer) off spot."
  default     = 1
}

variable "on_demand_desired_size" {
  type        = number
  description = "Initial on-demand nodes per AZ (later owned by cluster-autoscaler)."
  default     = 1
}

variable "on_demand_max_size" {
  type        = number
  description = "Maximum on-demand nodes per AZ."
  default     = 2
}

variable "spot_enabled" {
  type        = bool
  description = "Create the spot node group (cost optimization: interruption-tolerant replicas run on spot)."
  default     = true
}

variable "spot_instance_types" {
  type        = list(string)
  description = "Instance types of the spot node group; several similar sizes so one spot pool drying up is not an outage."
  default     = ["t3.xlarge", "t3a.xlarge", "m5.xlarge", "m5a.xlarge", "m6i.xlarge"]
}

variable "spot_min_size" {
  type        = number
  description = "Minimum spot nodes per AZ."
  default     = 0
}

variable "spot_desired_size" {
  type        = number
  description = "Initial spot nodes per AZ (later owned by cluster-autoscaler)."
  default     = 0
}

variable "spot_max_size" {
  type        = number
  description = "Maximum spot nodes per AZ."
  default     = 7
}

variable "node_disk_size_gib" {
  type        = number
  description = "Root volume size of every node, in GiB (gp3, encrypted)."
  default     = 50
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the CMK that encrypts the control-plane log group."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the control-plane log group, in days."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Control-plane (audit) logs are kept at least 365 days."
  }
}
