variable "environment" {
  type        = string
  description = "Environment name (prod, staging); the instance is chatsdk-<environment>, the app secret chatsdk/<environment>/database."
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL version; a major version (\"16\") lets RDS pick and auto-upgrade the minor version."
  default     = "16"

  validation {
    condition     = can(regex("^16(\\.[0-9]+)?$", var.engine_version))
    error_message = "ChatSDK is validated on PostgreSQL 16; give \"16\" or \"16.<minor>\"."
  }
}

variable "instance_class" {
  type        = string
  description = "RDS instance class (e.g. db.t4g.medium for staging, db.r6g.large for prod)."
}

variable "allocated_storage_gib" {
  type        = number
  description = "Initial gp3 storage, in GiB."
  default     = 100
}

variable "max_allocated_storage_gib" {
  type        = number
  description = "Upper bound of RDS storage auto-scaling, in GiB."
  default     = 1000
}

variable "backup_retention_days" {
  type        = number
  description = "Days of automated backups (point-in-time recovery window)."
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "backup_window" {
  type        = string
  description = "Daily backup window (UTC, hh24:mi-hh24:mi); must not overlap the maintenance window."
  default     = "02:00-03:00"
}

variable "maintenance_window" {
  type        = string
  description = "Weekly maintenance window (UTC, ddd:hh24:mi-ddd:hh24:mi)."
  default     = "sun:03:30-sun:04:30"
}

variable "monitoring_interval" {
  type        = number
  description = "Enhanced monitoring interval in seconds."
  default     = 30

  validation {
    condition     = contains([1, 5, 10, 15, 30, 60], var.monitoring_interval)
    error_message = "monitoring_interval must be one of 1, 5, 10, 15, 30, 60 (0 would disable enhanced monitoring)."
  }
}

variable "performance_insights_retention_days" {
  type        = number
  description = "Performance Insights retention in days (7 is free; otherwise a multiple of 31, or 731)."
  default     = 7
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets (one per AZ) of the DB subnet group."
}

variable "client_security_group_id" {
  type        = string
  description = "Security group of the EKS nodes/pods, the only source allowed to reach PostgreSQL."
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "CMK of the ChatSDK secrets, for chatsdk/<env>/database."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the CMK that encrypts the RDS log groups."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the RDS log groups, in days."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Database logs are kept at least 365 days."
  }
}
