variable "environment" {
  type        = string
  description = "Environment name (prod, staging); the cluster is chatsdk-<environment>, its SCRAM secret AmazonMSK_chatsdk-<environment>."
}

variable "kafka_version" {
  type        = string
  description = "Apache Kafka version of the MSK cluster."
  default     = "3.8.x"
}

variable "broker_instance_type" {
  type        = string
  description = "MSK broker instance type (e.g. kafka.t3.small for staging, kafka.m7g.large for prod)."
}

variable "broker_count" {
  type        = number
  description = "Number of brokers: one per AZ, so RF 3 with min.insync.replicas 2 survives the loss of an AZ."
  default     = 3

  validation {
    condition     = var.broker_count >= 3 && var.broker_count % 3 == 0
    error_message = "broker_count must be a multiple of 3 (the number of AZs), at least 3."
  }
}

variable "broker_volume_size_gib" {
  type        = number
  description = "Initial EBS volume per broker, in GiB. Grows by storage auto-scaling afterwards (the event log is kept forever), so later edits are ignored."
  default     = 100
}

variable "broker_volume_max_size_gib" {
  type        = number
  description = "Upper bound of storage auto-scaling per broker, in GiB."
  default     = 1000
}

variable "enhanced_monitoring" {
  type        = string
  description = "MSK enhanced monitoring level for CloudWatch metrics."
  default     = "PER_TOPIC_PER_BROKER"

  validation {
    condition     = contains(["PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"], var.enhanced_monitoring)
    error_message = "enhanced_monitoring must be PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION (DEFAULT is not enhanced)."
  }
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets, one per AZ, for the brokers."
}

variable "client_security_group_id" {
  type        = string
  description = "Security group of the EKS nodes/pods, the only source allowed to reach the brokers."
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "CMK of the ChatSDK secrets; MSK SCRAM secrets must be encrypted with a customer-managed key."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the CMK that encrypts the broker log group."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the broker log group, in days."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Broker logs are kept at least 365 days."
  }
}

variable "tiered_storage" {
  type        = bool
  description = "Enable MSK tiered storage (storage_mode TIERED) so the unlimited event log does not live on broker disks. Not available on kafka.t3 brokers."
  default     = false
}
