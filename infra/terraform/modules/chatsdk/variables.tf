# Sizes that differ between prod and staging have no default: each environment states them in its module call.
# Settings the environments share keep their default here.

# ---- placement and naming ------------------------------------------------------------------------------------

variable "environment" {
  type        = string
  description = "Environment name (prod, staging); resources are named chatsdk-<environment>, secrets chatsdk/<environment>/…."
}

variable "aws_region" {
  type        = string
  description = "Region of the aws provider the environment configures (reported in k8s_values)."
}

variable "availability_zones" {
  type        = list(string)
  description = "The 3 availability zones of aws_region to use; check the broker and DB instance types are offered in each."
}

# ---- public edge ---------------------------------------------------------------------------------------------

variable "public_host" {
  type        = string
  description = "Public host name of the ChatSDK API (Ingress host and ACM certificate), e.g. api.chat.example.com."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 hosted zone ID containing public_host (ACM DNS validation, external-dns)."
}

variable "allowed_origins" {
  type        = list(string)
  description = "Exact browser origins of the apps allowed by the uploads bucket's CORS (no wildcard)."
}

variable "waf_rate_limit_per_5_minutes" {
  type        = number
  description = "Requests per client IP per 5 minutes before WAF blocks it (requests with server credentials, Authorization: Basic, are not counted)."
}

# ---- network and cluster -------------------------------------------------------------------------------------

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the VPC (/16 or larger)."
}

variable "nat_gateway_per_az" {
  type        = bool
  description = "One NAT gateway per AZ (an AZ outage does not cut egress elsewhere) or one shared NAT gateway (cheaper)."
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version."
  default     = "1.33"
}

variable "cluster_endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API publicly (limited to cluster_public_access_cidrs)."
  default     = false
}

variable "cluster_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to the public Kubernetes API endpoint, when enabled."
  default     = []
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM principals given cluster-admin via EKS access entries; include the role that runs terraform (the creator gets no implicit entry)."
}

variable "on_demand_instance_types" {
  type        = list(string)
  description = "Instance types of the on-demand node group."
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
  description = "Create the spot node group."
  default     = true
}

variable "spot_instance_types" {
  type        = list(string)
  description = "Instance types of the spot node group (several, so a single spot pool shortage is tolerated)."
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
}

# ---- data stores ---------------------------------------------------------------------------------------------

variable "kafka_broker_instance_type" {
  type        = string
  description = "MSK broker instance type."
}

variable "kafka_broker_volume_size_gib" {
  type        = number
  description = "Initial EBS volume per broker in GiB (auto-scaled afterwards)."
}

variable "kafka_broker_volume_max_size_gib" {
  type        = number
  description = "Storage auto-scaling ceiling per broker in GiB."
}

variable "kafka_enhanced_monitoring" {
  type        = string
  description = "MSK enhanced monitoring level (PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION)."
}

variable "kafka_tiered_storage" {
  type        = bool
  description = "MSK tiered storage for the unlimited event log (a week on broker disks, the rest in the tier). Needs kafka.m5/m7g brokers; stage 2's topics follow it (output kafka_tiered_storage)."
}

variable "channel_events_partitions" {
  type        = number
  description = "Partitions of chatsdk.channel-events.v1, as created by stage 2 (kafka-topics); reported in k8s_values and caps projector_replicas."
}

variable "database_instance_class" {
  type        = string
  description = "RDS instance class."
}

variable "database_allocated_storage_gib" {
  type        = number
  description = "Initial RDS storage in GiB."
}

variable "database_max_allocated_storage_gib" {
  type        = number
  description = "RDS storage auto-scaling ceiling in GiB."
}

variable "database_backup_retention_days" {
  type        = number
  description = "Days of RDS automated backups."
}

variable "uploads_versioning_enabled" {
  type        = bool
  description = "Keep previous versions of uploaded objects."
  default     = true
}

variable "uploads_noncurrent_version_expiration_days" {
  type        = number
  description = "Days before noncurrent upload versions are deleted."
  default     = 30
}

variable "ecr_repository_namespace" {
  type        = string
  description = "ECR namespace of the images (<namespace>/command-api…); null gives chatsdk-<environment>, so environments sharing an account do not collide; empty gives bare names."
  default     = null
}

# ---- workload sizing (passed to infra/k8s through k8s_values) ------------------------------------------------

variable "command_api_min_replicas" {
  type        = number
  description = "Minimum command-api replicas (HPA)."
}

variable "command_api_max_replicas" {
  type        = number
  description = "Maximum command-api replicas (HPA)."

  validation {
    condition     = var.command_api_max_replicas >= var.command_api_min_replicas
    error_message = "command_api_max_replicas must be >= command_api_min_replicas."
  }
}

variable "query_api_min_replicas" {
  type        = number
  description = "Minimum query-api replicas (HPA)."
}

variable "query_api_max_replicas" {
  type        = number
  description = "Maximum query-api replicas (HPA)."

  validation {
    condition     = var.query_api_max_replicas >= var.query_api_min_replicas
    error_message = "query_api_max_replicas must be >= query_api_min_replicas."
  }
}

variable "projector_replicas" {
  type        = number
  description = "Projector replicas (one consumer-group member each); more than the partition count would sit idle."

  validation {
    condition     = var.projector_replicas >= 1 && var.projector_replicas <= var.channel_events_partitions
    error_message = "projector_replicas must be between 1 and channel_events_partitions."
  }
}
